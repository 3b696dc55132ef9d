import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import { hostPath, labInventoryFile, omensPlay, results, ROOT, sshRoot } from "../helpers/lab.js";

const inventory = labInventoryFile();
const playbook = "test/fixtures/runner/tags.ts";
const ran = async (...flags: string[]) => {
  const run = await omensPlay([playbook, "-i", inventory, "--limit", "spire", "--json", ...flags]);
  expect(run.code, run.stderr).toBe(0);
  return results(run).map((r) => r.task);
};

describe("tag selection", () => {
  beforeEach(() => sshRoot("spire", "rm -rf /srv/omens-tags && mkdir -p /srv/omens-tags"));

  it("without flags runs everything but tasks tagged never", async () => {
    expect(await ran()).toEqual(["config", "service", "always", "untagged", "inner", "second"]);
    expect(existsSync(hostPath("spire", "/srv/omens-tags/debug"))).toBe(false);
    expect(existsSync(hostPath("spire", "/srv/omens-tags/inner"))).toBe(true);
  });

  it("--tags runs the tagged tasks and those tagged always", async () => {
    expect(await ran("--tags", "config")).toEqual(["config", "always", "second"]);
    expect(existsSync(hostPath("spire", "/srv/omens-tags/service"))).toBe(false);
  });

  it("a task tagged never runs when --tags names one of its other tags", async () => {
    expect(await ran("--tags", "debug")).toEqual(["always", "debug"]);
  });

  it("a --tags name no task carries runs only the always tasks, and says so in the run's output", async () => {
    const run = await omensPlay([
      playbook,
      "-i",
      inventory,
      "--limit",
      "spire",
      "--json",
      "--tags",
      "confg",
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(results(run).map((r) => r.task)).toEqual(["always"]);
    expect(run.events.filter((e) => e.kind === "warning").map((e) => e.message)).toEqual([
      expect.stringMatching(
        /^--tags: no task of the playbook has tag 'confg' \(its tags: .*config/,
      ),
    ]);
  });

  it("a block's tags reach the tasks inside it", async () => {
    expect(await ran("--tags", "blocktag")).toEqual(["always", "inner"]);
  });

  it("--skip-tags leaves tasks out, always included when named", async () => {
    expect(await ran("--skip-tags", "service,always")).toEqual([
      "config",
      "untagged",
      "inner",
      "second",
    ]);
    expect(await ran("--skip-tags", "config")).toEqual(["service", "always", "untagged", "inner"]);
  });
});

describe("--start-at-task and --step", () => {
  beforeEach(() => sshRoot("spire", "rm -rf /srv/omens-tags && mkdir -p /srv/omens-tags"));

  it("--start-at-task skips the tasks before the named one, later plays run whole", async () => {
    expect(await ran("--start-at-task", "untagged")).toEqual(["untagged", "inner", "second"]);
    expect(existsSync(hostPath("spire", "/srv/omens-tags/config"))).toBe(false);
    expect(await ran("--start-at-task", "se*")).toEqual([
      "service",
      "always",
      "untagged",
      "inner",
      "second",
    ]);
  });

  it("--start-at-task with a name no task has is a usage error before any host", async () => {
    const run = await omensPlay([playbook, "-i", inventory, "--start-at-task", "nope"]);
    expect(run.code).toBe(5);
    expect(run.stderr).toContain('--start-at-task: no task is named "nope"');
  });

  it("--step without a terminal is refused with a usage error", async () => {
    const run = await omensPlay([playbook, "-i", inventory, "--step"]);
    expect(run.code).toBe(5);
    expect(run.stderr).toContain("--step asks before each task, so it needs a terminal");
    expect(run.stdout).toBe("");
  });

  it("--step on a terminal runs a task on y, skips it on n, and stops asking on c", async () => {
    // script(1) gives the CLI a terminal; the answers are typed ahead into it.
    const command = [
      process.execPath,
      "bin/omens-play.js",
      playbook,
      "-i",
      inventory,
      "--limit",
      "spire",
      "--step",
    ].join(" ");
    const result = spawnSync("script", ["-qec", command, "/dev/null"], {
      input: "y\nn\nc\n",
      encoding: "utf8",
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
    });
    expect(result.status, result.stdout).toBe(0);
    expect(result.stdout).toContain('Perform task "config"? (y)es/(n)o/(c)ontinue:');
    expect(result.stdout).toContain('Perform task "always"?');
    expect(result.stdout).not.toContain('Perform task "untagged"?');
    const exists = (name: string) => existsSync(hostPath("spire", `/srv/omens-tags/${name}`));
    expect(exists("config")).toBe(true);
    expect(exists("service")).toBe(false);
    expect(["always", "untagged", "inner", "second"].every(exists)).toBe(true);
  });
});
