import { existsSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import { hostPath, lab, labInventoryFile, omensPlay, results, sshRoot } from "../helpers/lab.js";

// n1-n8 are eight inventory hosts spread over the three lab hosts (each its own connection).
const nodes = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"];
const labHosts = ["spire", "auth", "ca"] as const;
const nodesInventory = (dead: string[] = []) =>
  labInventoryFile({
    extraChildren: [
      "    nodes:",
      "      hosts:",
      ...nodes.map((n, i) => {
        const address = lab().hosts[labHosts[i % 3]!].address;
        // A dead node gets an address no lab host has: it is unreachable.
        return `        ${n}: { address: ${dead.includes(n) ? address.replace(/\d+$/, "250") : address} }`;
      }),
    ].join("\n"),
  });
const inventory = nodesInventory();
const where = (n: string) => hostPath(labHosts[nodes.indexOf(n) % 3]!, `/srv/omens-b09/${n}`);
const play = (budget: string, inv = inventory) =>
  omensPlay(
    [
      "test/fixtures/cases/b09-serial.ts",
      "-i",
      inv,
      "--json",
      "--retry-file",
      "/tmp/omens-b09.retry",
    ],
    { B09_MAX_FAIL: budget },
  );

describe("B09: serial batches and maxFailPercentage", () => {
  beforeEach(() => {
    for (const host of labHosts) sshRoot(host, "rm -rf /srv/omens-b09 && mkdir -p /srv/omens-b09");
  });

  it("1 failure in a batch of 4 is 25%, within a 25% budget: both batches run", async () => {
    const run = await play("25");
    expect(run.code).toBe(2);
    expect(run.recap.n2).toMatchObject({ failed: 1 });
    for (const n of nodes.filter((n) => n !== "n2")) {
      expect(run.recap[n]).toMatchObject({ failed: 0, changed: 1, ok: 1 });
      expect(existsSync(where(n))).toBe(true);
    }
    expect(existsSync(where("n2"))).toBe(false);
  });

  it("with a 24% budget the play stops after T1 of batch 1, states the numbers, and later batches are untouched", async () => {
    const run = await play("24");
    expect(run.code).toBe(2);
    const stopped = run.events.find((e) => e.kind === "play-stopped") as
      { message: string } | undefined;
    expect(stopped?.message).toContain("1 of 4 hosts failed (25%) > 24%");
    expect(results(run).filter((r) => r.task === "T2")).toEqual([]);
    for (const n of nodes) expect(existsSync(where(n))).toBe(false);
    for (const n of ["n5", "n6", "n7", "n8"]) expect(results(run, n)).toEqual([]);
    const recap = run.events.findLast((e) => e.kind === "recap") as { untouched?: string[] };
    expect(recap.untouched).toEqual(["n5", "n6", "n7", "n8"]);
    expect(Object.keys(run.recap)).toEqual(["n1", "n2", "n3", "n4"]);
  });

  it("an unreachable host counts as failed against the batch size: 2 of 4 (50%) > 25% stops", async () => {
    const run = await play("25", nodesInventory(["n3"]));
    expect(run.code).toBe(2);
    expect(run.recap.n3).toMatchObject({ unreachable: 1 });
    const stopped = run.events.find((e) => e.kind === "play-stopped") as { message: string };
    expect(stopped.message).toContain("2 of 4 hosts failed (50%) > 25%");
    for (const n of ["n5", "n6", "n7", "n8"]) expect(results(run, n)).toEqual([]);
  });
});
