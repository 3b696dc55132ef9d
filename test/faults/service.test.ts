import { beforeAll, describe, expect, it } from "vitest";
import { labInventory, omensPlay, results, sshRoot } from "../helpers/lab.js";

// Fault: a config change makes a service fail to start. The systemd handler (and a systemd
// task) fail, and the error carries the unit's last journal lines, which say why.
const run = (config: string) =>
  omensPlay(["test/fixtures/faults/service.ts", "-i", labInventory(), "--json"], {
    OMENS_FAULT_CONFIG: config,
  });
const isActive = () => sshRoot("ca", "systemctl is-active omens-fault || true").trim();

describe("fault: a service fails to start after a config change", () => {
  beforeAll(() =>
    sshRoot(
      "ca",
      "systemctl stop omens-fault 2>/dev/null; mkdir -p /etc/omens-fault; printf 'valid 0\\n' > /etc/omens-fault/app.conf",
    ),
  );

  it("control: with a good config the service starts and stays active", async () => {
    const first = await run("valid 1\n");
    expect(first.code, first.stdout).toBe(0);
    expect(isActive()).toBe("active");
  });

  it("a bad config: the restart handler fails with the unit's journal lines saying why", async () => {
    const bad = await run("port=eighty\n");
    expect(bad.code).toBe(2);
    const handler = results(bad, "ca").find((r) => r.task === "restart app");
    expect(handler?.status).toBe("failed");
    expect(handler?.error).toContain("omens-fault did not stay running after restart");
    expect(handler?.error).toContain("--- last journal lines of omens-fault ---");
    expect(handler?.error).toContain("omens-fault: cannot use config: port=eighty");
    expect(isActive()).not.toBe("active");
  });

  it("a systemd task starting the broken service fails the same way", async () => {
    sshRoot("ca", "systemctl reset-failed omens-fault || true");
    const again = await run("port=eighty\n"); // config unchanged: no handler, the task starts it
    const task = results(again, "ca").find((r) => r.task === "app started");
    expect(task?.status).toBe("failed");
    expect(task?.error).toContain("omens-fault: cannot use config: port=eighty");
  });

  it("control: fixing the config lets the handler restart it", async () => {
    const fixed = await run("valid 2\n");
    expect(fixed.code, fixed.stdout).toBe(0);
    expect(isActive()).toBe("active");
  });
});
