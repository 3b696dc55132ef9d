import { readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { labInventoryFile, omensPlay, sshRoot } from "../helpers/lab.js";

// The same inventory with addresses no lab host has: any connection attempt would fail.
const real = labInventoryFile();
const dead = real.replace(/lab\.yaml$/, "dead.yaml");
writeFileSync(
  dead,
  readFileSync(real, "utf8").replace(/address: (\d+\.\d+\.\d+)\.\d+/g, "address: $1.250"),
);
const playbook = "test/fixtures/runner/tags.ts";
const accepted = () =>
  Number(sshRoot("spire", "journalctl -u ssh --no-pager | grep -c 'Accepted publickey'"));

describe("--list-hosts, --list-tasks and --list-tags", () => {
  it("print hosts, selected tasks (never-tagged ones are not) and tags from the playbook alone", async () => {
    const run = await omensPlay([
      playbook,
      "-i",
      dead,
      "--list-hosts",
      "--list-tasks",
      "--list-tags",
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(
      [
        "play first play (hosts: all)",
        "  hosts (3):",
        "    spire",
        "    auth",
        "    ca",
        "  tasks:",
        "    config  [tags: config]",
        "    service  [tags: service]",
        "    always  [tags: always]",
        "    untagged",
        "    inner  [tags: blocktag]",
        "play second play (hosts: servers)",
        "  hosts (1):",
        "    spire",
        "  tasks:",
        "    second  [tags: config]",
        "tags: always, blocktag, config, service",
        "",
      ].join("\n"),
    );
  });

  it("list only the selected tasks under --tags", async () => {
    const run = await omensPlay([playbook, "-i", dead, "--list-tasks", "--tags", "debug"]);
    expect(run.stdout).toContain(
      "    always  [tags: always]\n    debug  [tags: never, debug]\nplay",
    );
  });

  it("warn about a --tags or --skip-tags name no task carries, and not about a never-tagged one", async () => {
    const run = await omensPlay([
      playbook,
      "-i",
      dead,
      "--list-tasks",
      "--tags",
      "confg,debug,always",
      "--skip-tags",
      "servce",
    ]);
    expect(run.code, run.stderr).toBe(0);
    const tags = "always, blocktag, config, debug, never, service";
    expect(run.stderr).toBe(
      [
        `warning: --tags: no task of the playbook has tag 'confg' (its tags: ${tags})`,
        `warning: --skip-tags: no task of the playbook has tag 'servce' (its tags: ${tags})`,
        "",
      ].join("\n"),
    );
  });

  it("connect to no host: the same inventory cannot even be reached for a real run", async () => {
    const run = await omensPlay([
      playbook,
      "-i",
      dead,
      "--json",
      "--retry-file",
      "/tmp/omr-dead.retry",
    ]);
    expect(run.code).toBe(4);
  });

  it("open no SSH session on a reachable lab host", async () => {
    const before = accepted();
    const run = await omensPlay([playbook, "-i", real, "--list-hosts", "--list-tasks"]);
    expect(run.code, run.stderr).toBe(0);
    // Only this test's own journal query logged in since.
    expect(accepted()).toBe(before + 1);
  });
});
