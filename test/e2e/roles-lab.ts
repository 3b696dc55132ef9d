import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { labInventory, ROOT } from "../helpers/lab.js";

/**
 * The lab inventory with each release's sha256 taken from the build `lab-up.sh` just made
 * (test/standins/dist/SHA256SUMS), so the run checks the artifacts the lab actually serves.
 */
export function pinnedLabInventory(): string {
  const sums = new Map(
    readFileSync(join(ROOT, "test/standins/dist/SHA256SUMS"), "utf8")
      .trim()
      .split("\n")
      .map((line) => line.split(/\s+/).reverse() as [string, string]),
  );
  const text = readFileSync(labInventory(), "utf8").replace(
    /(url: \S+\/([^/\s]+)\n(\s+)sha256: )\S+/g,
    (all, head: string, name: string) => (sums.has(name) ? `${head}${sums.get(name)}` : all),
  );
  const file = join(mkdtempSync(join(tmpdir(), "omens-pinned-")), "lab.yaml");
  writeFileSync(file, text);
  return file;
}
