import { existsSync, readFileSync, rmSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import {
  hostPath,
  LAB_HOSTS,
  labInventoryFile,
  omensPlay,
  results,
  sshRoot,
} from "../helpers/lab.js";

const inventory = labInventoryFile();
const retryFile = "/tmp/omr-rollout.retry";
const done = (host: (typeof LAB_HOSTS)[number]) =>
  existsSync(hostPath(host, "/srv/omens-rollout/done"));
const play = (...extra: string[]) =>
  omensPlay([
    "test/fixtures/runner/rollout.ts",
    "-i",
    inventory,
    "--retry-file",
    retryFile,
    ...extra,
  ]);

describe("serial: 1 over three hosts when the second fails", () => {
  beforeEach(() => {
    rmSync(retryFile, { force: true });
    for (const host of LAB_HOSTS)
      sshRoot(host, "rm -rf /srv/omens-rollout && mkdir -p /srv/omens-rollout");
    sshRoot("auth", "touch /srv/omens-rollout/broken");
  });

  it("finishes the first host, leaves the third untouched, and says so in the recap and exit code", async () => {
    const run = await play("--json");
    expect(run.code).toBe(2);
    expect(done("spire")).toBe(true);
    expect(done("auth")).toBe(false);
    expect(done("ca")).toBe(false);
    expect(results(run, "ca")).toEqual([]);
    expect(run.recap.spire).toMatchObject({ ok: 1, changed: 1, failed: 0 });
    expect(run.recap.auth).toMatchObject({ failed: 1 });
    expect(run.recap.ca).toBeUndefined();
    const recap = run.events.findLast((e) => e.kind === "recap") as { untouched?: string[] };
    expect(recap.untouched).toEqual(["ca"]);
    const stopped = run.events.find((e) => e.kind === "play-stopped") as { message: string };
    expect(stopped.message).toBe(
      "all 1 hosts of the batch failed: stopping the rollout; later batches are untouched (ca)",
    );
    expect(readFileSync(retryFile, "utf8")).toBe("auth\n");
  });

  it("prints the untouched hosts under the recap in plain output", async () => {
    const run = await play();
    expect(run.stdout).toMatch(/auth +ok=0 changed=0 failed=1/);
    expect(run.stdout).toContain("untouched (the rollout stopped before them): ca");
    expect(run.stderr).toContain(`retry with --limit @${retryFile}`);
  });

  it("--limit @retry-file runs only the failed host", async () => {
    await play();
    sshRoot("auth", "rm /srv/omens-rollout/broken");
    const rerun = await play("--json", "--limit", `@${retryFile}`);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(Object.keys(rerun.recap)).toEqual(["auth"]);
    expect(done("auth")).toBe(true);
    expect(done("ca")).toBe(false);
  });
});
