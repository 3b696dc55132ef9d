import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Unit tests run hosts on this machine (connection: local) under names such as box1 that many
// files share. Each test file gets its own state folder, so one file's owed handlers are never
// replayed by another's runs, and nothing is left in /var/lib/omens.
process.env.OMENS_STATE_DIR = mkdtempSync(join(tmpdir(), "omens-unit-state-"));
