import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import {
  LAB_DIR,
  labInventory,
  omensPlay,
  rebuildLab,
  results,
  ROOT,
  sshRoot,
  type PlayRun,
} from "../helpers/lab.js";

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

/**
 * The starting point of sprint 3: a rebuilt lab converged by sprints 1 and 2 (each run clean),
 * and the DevID trust root the inventory names, the lab step-ca's root, fetched from the CA
 * host. Returns the pinned inventory the runs used.
 */
export async function labBeforeSprint3(): Promise<string> {
  rebuildLab();
  const inventory = pinnedLabInventory();
  for (const book of ["playbooks/sprint1-foundation.ts", "playbooks/sprint2-integration.ts"])
    expectClean(await playJson(book, inventory), book);
  writeFileSync(join(LAB_DIR, "devid-ca.pem"), sshRoot("ca", "cat /etc/step-ca/certs/root_ca.crt"));
  return inventory;
}
