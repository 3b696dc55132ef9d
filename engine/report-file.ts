import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { inputError } from "./errors.js";
import type { ChangeRow, HealthRow, HostCounts } from "./events.js";
import { maskSecrets } from "./secret.js";

/** What `--report FILE` holds: one JSON document, for monitoring. */
export interface RunReportFile {
  /** The playbook's name, as given to definePlaybook. */
  playbook: string;
  check: boolean;
  /** The recap's counts per host. */
  hosts: Record<string, HostCounts>;
  health: HealthRow[];
  changes: ChangeRow[];
}

/** Refuses a report path whose folder does not exist, or that is a folder, before any host is contacted. */
export function validateReportPath(file: string): void {
  const dir = dirname(file);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw inputError(
      "usage",
      "REPORT_DIR",
      `--report ${file}: the folder ${dir} does not exist`,
      {},
      "create the folder first, or give another path",
    );
  if (existsSync(file) && statSync(file).isDirectory())
    throw inputError("usage", "REPORT_IS_FOLDER", `--report ${file}: this is a folder, not a file`);
}

/**
 * Writes the report atomically: a temp file in the same folder, synced, then renamed over
 * `file`, so a reader sees the old report or the new one, never half of one. Secret values
 * are masked as in every other output.
 */
export function writeReportFile(file: string, report: RunReportFile): void {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    writeSynced(temp, maskSecrets(JSON.stringify(report, null, 2)) + "\n");
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

function writeSynced(path: string, text: string) {
  const fd = openSync(path, "w", 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
