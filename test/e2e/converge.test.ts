import { readFileSync, statSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  hashHostTree,
  hostPath,
  LAB_HOSTS,
  labInventory,
  omensPlay,
  results,
  sshRoot,
} from "../helpers/lab.js";

const play = (...extra: string[]) =>
  omensPlay(["test/fixtures/converge.ts", "-i", labInventory(), "--json", ...extra]);

describe("a playbook that writes configuration and runs a service, on all three lab hosts", () => {
  it("changes every host, then converges: the second run changes nothing", async () => {
    for (const host of LAB_HOSTS)
      sshRoot(
        host,
        "systemctl disable --now omens-demo 2>/dev/null; rm -rf /etc/omens-demo /etc/default/omens-demo /etc/systemd/system/omens-demo.service; systemctl daemon-reload",
      );
    const before = LAB_HOSTS.map(hashHostTree);

    const check = await play("--check", "--diff");
    expect(check.code, check.stderr).toBe(0);
    expect(LAB_HOSTS.map(hashHostTree)).toEqual(before);

    const first = await play();
    expect(first.code, first.stderr + first.stdout).toBe(0);
    for (const host of LAB_HOSTS) {
      expect(first.recap[host]?.changed).toBeGreaterThanOrEqual(5);
      expect(first.recap[host]?.failed).toBe(0);
      // The check run predicted exactly the changes the real run made, task by task.
      const predicted = results(check, host)
        .filter((r) => r.status === "changed")
        .map((r) => r.task);
      const made = results(first, host)
        .filter((r) => r.status === "changed")
        .map((r) => r.task);
      expect(predicted).toEqual(made);
    }
    expect(LAB_HOSTS.map(hashHostTree)).not.toEqual(before);

    const second = await play();
    expect(second.code, second.stderr).toBe(0);
    for (const host of LAB_HOSTS)
      expect(second.recap[host]).toMatchObject({ changed: 0, failed: 0, unreachable: 0 });
  });

  it("leaves the unit running under each host's own systemd, with the files as asked", () => {
    for (const host of LAB_HOSTS) {
      expect(
        sshRoot(host, "systemctl is-active omens-demo; systemctl is-enabled omens-demo")
          .split("\n")
          .slice(0, 2),
      ).toEqual(["active", "enabled"]);
      expect(sshRoot(host, "curl -s http://127.0.0.1:8099/demo.conf")).toContain(
        `host = "${host}"`,
      );
      const conf = hostPath(host, "/etc/omens-demo/demo.conf");
      expect(statSync(conf).mode & 0o7777).toBe(0o640);
      expect(readFileSync(conf, "utf8")).toBe(
        `# Managed by Omens; local edits are overwritten\nhost = "${host}"\ntrust_domain = "funlab.casa"\nport = 8099\n`,
      );
    }
  });

  it("restarts the service once when its configuration changes, and only on that host", async () => {
    const pid = (host: (typeof LAB_HOSTS)[number]) =>
      sshRoot(host, "systemctl show -p MainPID --value omens-demo").trim();
    const pids = Object.fromEntries(LAB_HOSTS.map((h) => [h, pid(h)]));
    sshRoot("auth", "echo '# local edit' >> /etc/omens-demo/demo.conf");
    const run = await play("--diff");
    expect(run.code, run.stderr).toBe(0);
    expect(run.recap.auth?.changed).toBe(2); // the template and its restart handler
    expect(results(run, "auth").filter((r) => r.task === "restart").length).toBe(1);
    expect(run.recap.ca?.changed).toBe(0);
    expect(pid("auth")).not.toBe(pids.auth);
    expect(pid("ca")).toBe(pids.ca);
    expect(pid("spire")).toBe(pids.spire);
  });
});
