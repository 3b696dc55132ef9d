import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { timedPlay } from "../helpers/conn.js";
import { lab, labInventoryFile, results, sshRoot } from "../helpers/lab.js";

// Faults: permission denied without become, a wrong become password, and sudo asking for a
// password that is not configured. Each fails within seconds (sudo -n, or the password fed
// once on stdin after sudo's own prompt), naming host, user and the fix.
const PLAYBOOK = "test/fixtures/faults/become.ts";
// Far above a failed sudo (about 2 s for a wrong password) and far below a hung prompt.
const FAST_MS = 20_000;

async function runAs(settings: string, env: Record<string, string> = {}) {
  const inventory = labInventoryFile({ hostSettings: { ca: settings } });
  return timedPlay([PLAYBOOK, "-i", inventory, "--json", "-vvv"], env);
}

describe("fault: become and permissions", () => {
  const { users } = lab() as ReturnType<typeof lab> & { users: Record<string, string> };

  it("without become, a root-only write fails with the user and 'set become: true'", async () => {
    sshRoot("ca", "rm -f /etc/omens-become.conf");
    const run = await runAs(`user: ${users.passwordlessSudo}`);
    expect(run.code).toBe(2);
    const failed = results(run, "ca").find((r) => r.status === "failed");
    expect(failed?.task).toBe("root-only file");
    expect(failed?.error).toContain("Permission denied");
    expect(failed?.error).toContain(`ran as ${users.passwordlessSudo} without become`);
    expect(failed?.error).toContain("set become: true");
    expect(failed?.error).toContain("host ca");
    expect(run.ms).toBeLessThan(FAST_MS);
  });

  it("a wrong become password fails fast, naming host, user and the variable to fix", async () => {
    const run = await runAs(
      `user: ${users.passwordSudo}, become: true, becomePasswordEnv: OMENS_SUDO_PW`,
      { OMENS_SUDO_PW: "not-the-password" },
    );
    expect(run.code).toBe(4);
    const [first] = results(run, "ca");
    expect(first?.error).toContain(
      `sudo on ca rejected the become password of ${users.passwordSudo}`,
    );
    expect(first?.error).toContain("$OMENS_SUDO_PW");
    expect(run.stdout + run.stderr).not.toContain("not-the-password");
    expect(run.ms).toBeLessThan(FAST_MS);
  });

  it("sudo asking for a password that is not configured fails fast with how to configure it", async () => {
    const run = await runAs(`user: ${users.passwordSudo}, become: true`);
    expect(run.code).toBe(4);
    const [first] = results(run, "ca");
    expect(first?.error).toContain(`sudo on ca asks ${users.passwordSudo} for a password`);
    expect(first?.error).toContain("set becomePasswordEnv");
    expect(first?.error).toContain("NOPASSWD");
    expect(run.ms).toBeLessThan(FAST_MS);
  });

  it("a user without sudo rights fails fast the same way, never waiting on a prompt", async () => {
    const run = await runAs(`user: ${users.noSudo}, become: true`);
    expect(run.code).toBe(4);
    expect(results(run, "ca")[0]?.error).toContain(
      `sudo on ca asks ${users.noSudo} for a password`,
    );
    expect(run.ms).toBeLessThan(FAST_MS);
  });

  it("control: the right password becomes root, writes the file and is never printed", async () => {
    sshRoot("ca", "rm -f /etc/omens-become.conf");
    const password = readFileSync(lab().sudoPasswordFile, "utf8").trim();
    const run = await runAs(
      `user: ${users.passwordSudo}, become: true, becomePasswordEnv: OMENS_SUDO_PW`,
      { OMENS_SUDO_PW: password },
    );
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toContain('"stdout":"root\\n"');
    expect(sshRoot("ca", "stat -c %U /etc/omens-become.conf").trim()).toBe("root");
    expect(run.stdout + run.stderr).not.toContain(password);
  });
});
