import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { labInventory, omensPlay, results, ROOT, type PlayRun } from "../helpers/lab.js";

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

/** Runs a playbook with the CLI against an inventory, with JSON events. */
export const playJson = (book: string, inventory: string, ...extra: string[]) =>
  omensPlay([book, "-i", inventory, "--json", ...extra]);

/** The run ended with exit 0, and no task failed and no host was unreachable. */
export function expectClean(run: PlayRun, what: string) {
  const failed = results(run).filter((r) => r.status === "failed" || r.status === "unreachable");
  expect(failed, `${what}: ${JSON.stringify(failed, null, 1)}\n${run.stderr}`).toEqual([]);
  expect(run.code, `${what}\n${run.stderr}`).toBe(0);
}
