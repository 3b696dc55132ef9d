import { existsSync, readFileSync, statSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  hostPath,
  labInventory,
  labInventoryFile,
  omensPlay,
  results,
  sshRoot,
} from "../helpers/lab.js";
import { unusedLabAddress } from "../helpers/conn.js";

const playbook = "test/fixtures/runner/delegate.ts";

describe("delegateTo and deferred arguments", () => {
  it("runs a task on the server for each agent and hands its output on without printing it", async () => {
    for (const host of ["spire", "auth", "ca"] as const) sshRoot(host, "rm -rf /etc/omens-deleg");
    const run = await omensPlay([playbook, "-i", labInventory(), "--json", "-vvv"]);
    expect(run.code, run.stdout + run.stderr).toBe(0);

    const values = (["auth", "ca"] as const).map((host) => {
      const path = hostPath(host, "/etc/omens-deleg/value");
      expect(statSync(path).mode & 0o777).toBe(0o600);
      return readFileSync(path, "utf8");
    });
    for (const value of values) expect(value).toMatch(/^[0-9a-f]{32}$/);
    expect(values[0]).not.toBe(values[1]);
    // The delegated tasks ran on spire; the copy ran on the agents only.
    expect(existsSync(hostPath("spire", "/etc/omens-deleg"))).toBe(false);
    for (const value of values) expect(run.stdout + run.stderr).not.toContain(value);

    const minted = run.events.filter(
      (e) => e.kind === "task-result" && e.task === "a value minted on the server",
    );
    expect(minted.map((e) => [e.host, e.delegate]).sort()).toEqual([
      ["auth", "spire"],
      ["ca", "spire"],
    ]);
    expect(run.recap.spire).toBeUndefined();

    const again = await omensPlay([playbook, "-i", labInventory(), "--json"]);
    expect(again.code).toBe(0);
    expect(again.recap.auth?.changed).toBe(1); // a new value each run: the copy changes
  });

  it("refuses a delegate that is not in the inventory before contacting any host", async () => {
    const run = await omensPlay([playbook, "-i", labInventory(), "--json"], {
      OMENS_DELEGATE: "nosuch",
    });
    expect(run.code).toBe(5);
    expect(run.stderr).toContain('delegates to "nosuch", which is not an inventory host');
    expect(run.stderr).toContain("delegate.ts:");
    expect(results(run)).toEqual([]);
  });

  it("fails the task, not the host, when the delegate cannot be reached", async () => {
    const inventory = labInventoryFile({
      extraChildren: `    offline:\n      hosts:\n        ghost: { address: ${unusedLabAddress()}, connectTimeout: 2 }`,
    });
    const run = await omensPlay([playbook, "-i", inventory, "--json", "--limit", "auth"], {
      OMENS_DELEGATE: "ghost",
    });
    expect(run.code).toBe(2);
    expect(run.recap.auth).toMatchObject({ failed: 1, unreachable: 0 });
    const failed = results(run, "auth").find((r) => r.status === "failed");
    expect(`${failed?.reason} ${failed?.error}`).toContain(
      "cannot reach ghost, which this task delegates to",
    );
  });
});
