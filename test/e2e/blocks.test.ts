import { existsSync, readFileSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import {
  hostPath,
  LAB_HOSTS,
  labInventoryFile,
  omensPlay,
  results,
  sshRoot,
  type LabHost,
} from "../helpers/lab.js";

const inventory = labInventoryFile();
const at = (host: LabHost, name: string) => hostPath(host, `/srv/omens-blocks/${name}`);
const read = (host: LabHost, name: string) => readFileSync(at(host, name), "utf8");
const play = (variant: string) =>
  omensPlay(
    [
      "test/fixtures/runner/blocks.ts",
      "-i",
      inventory,
      "--json",
      "--retry-file",
      "/tmp/omr-blocks.retry",
    ],
    { BLOCKS_VARIANT: variant },
  );

describe("block, rescue and always", () => {
  beforeEach(() => {
    for (const host of LAB_HOSTS)
      sshRoot(
        host,
        "rm -rf /srv/omens-blocks && mkdir -p /srv/omens-blocks && printf 'v=1\\n' > /srv/omens-blocks/app.conf",
      );
    sshRoot("auth", "touch /srv/omens-blocks/break");
  });

  it("rescue restores the file the failing block changed; the rescued host is not failed", async () => {
    const run = await play("rescue");
    expect(run.code, run.stderr).toBe(0);
    expect(read("auth", "app.conf")).toBe("v=1\n");
    expect(read("auth", "failure")).toMatch(
      /^validate the new config\nexit code 3 .*\n.*config rejected/s,
    );
    expect(existsSync(at("auth", "valid"))).toBe(false);
    expect(run.recap.auth).toMatchObject({ failed: 0, rescued: 1 });
    for (const host of ["spire", "ca"] as const) {
      expect(read(host, "app.conf")).toBe("v=2\n");
      expect(existsSync(at(host, "valid"))).toBe(true);
      expect(existsSync(at(host, "failure"))).toBe(false);
      expect(run.recap[host]).toMatchObject({ failed: 0, rescued: 0 });
    }
    // always ran in both outcomes, and every host went on after the block.
    for (const host of LAB_HOSTS) {
      expect(existsSync(at(host, "attempted"))).toBe(true);
      expect(existsSync(at(host, "after"))).toBe(true);
    }
    expect(LAB_HOSTS.filter((h) => existsSync(at(h, "only-ca")))).toEqual(["ca"]);
    const failed = results(run, "auth").find((r) => r.task === "validate the new config");
    expect(failed).toMatchObject({ status: "failed", rescued: true });
  });

  it("keeps hosts in step: the others wait while one host runs its rescue", async () => {
    const run = await play("rescue");
    const index = (kind: string, task: string, host?: string) =>
      run.events.findIndex((e) => e.kind === kind && e.task === task && (!host || e.host === host));
    const rescueDone = index("task-result", "restore the old config", "auth");
    expect(rescueDone).toBeGreaterThan(0);
    for (const host of LAB_HOSTS) {
      expect(index("task-start", "mark the attempt", host)).toBeGreaterThan(rescueDone);
      expect(index("task-start", "after the block", host)).toBeGreaterThan(
        run.events.findLastIndex((e) => e.kind === "task-result" && e.task === "mark the attempt"),
      );
    }
    // Hosts that did not fail never run a rescue task.
    expect(results(run, "spire").map((r) => r.task)).not.toContain("restore the old config");
  });

  it("without rescue, always still runs, then the host fails and stops", async () => {
    const run = await play("no-rescue");
    expect(run.code).toBe(2);
    expect(run.recap.auth).toMatchObject({ failed: 1, rescued: 0 });
    expect(existsSync(at("auth", "attempted"))).toBe(true);
    expect(existsSync(at("auth", "after"))).toBe(false);
    expect(read("auth", "app.conf")).toBe("v=2\n");
    for (const host of ["spire", "ca"] as const) expect(existsSync(at(host, "after"))).toBe(true);
    expect(readFileSync("/tmp/omr-blocks.retry", "utf8")).toBe("auth\n");
  });

  it("a failure in a nested block runs the inner always, then the outer rescue", async () => {
    const run = await play("nested");
    expect(run.code, run.stderr).toBe(0);
    const tasks = results(run, "auth").map((r) => `${r.task}:${r.status}`);
    expect(tasks).toEqual([
      "write the new config:changed",
      "validate the new config:failed",
      "inner always:changed",
      "restore the old config:changed",
      "record what failed:changed",
      "record what failed:changed",
      "mark the attempt:changed",
      "after the block:changed",
      "a task of a conditional block:skipped",
    ]);
    expect(read("auth", "app.conf")).toBe("v=1\n");
    expect(read("spire", "app.conf")).toBe("v=2\n");
    expect(existsSync(at("spire", "inner-always"))).toBe(true);
  });
});
