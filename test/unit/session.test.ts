import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import type { RawChannel } from "../../engine/connection/channel.js";
import { ShellSession } from "../../engine/connection/session.js";

// The session protocol, spoken to a real /bin/sh on this machine (what an SSH channel running
// "exec /bin/sh" gives on a host).
function localShell(): RawChannel {
  const child = spawn("/bin/sh", [], { stdio: ["pipe", "pipe", "pipe"] });
  return {
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    done: new Promise((resolve) => child.on("close", (rc) => resolve({ rc }))),
    kill: () => child.kill(),
  };
}

let sessions: ShellSession[] = [];
function session(): ShellSession {
  const s = new ShellSession(localShell(), { host: "local" });
  sessions.push(s);
  return s;
}
afterEach(() => {
  sessions.forEach((s) => s.close());
  sessions = [];
});

describe("shell session", () => {
  it("keeps stdout, stderr and the exit code of each command apart", async () => {
    const s = session();
    const result = await s.run("printf out; printf err >&2; exit 3", undefined);
    expect(result.rc).toBe(3);
    expect(result.stdout.toString()).toBe("out");
    expect(result.stderr.toString()).toBe("err");
    const next = await s.run("echo second", undefined);
    expect(next).toMatchObject({ rc: 0 });
    expect(next.stdout.toString()).toBe("second\n");
  });

  it("keeps cd, set -e, variables and exit inside the command", async () => {
    const s = session();
    await s.run("cd /tmp; X=1; set -e; false; echo unreachable", undefined);
    const after = await s.run('pwd; echo "x=${X:-unset}"; false; echo still here', undefined);
    expect(after.stdout.toString()).not.toContain("/tmp\n");
    expect(after.stdout.toString()).toContain("x=unset\nstill here\n");
  });

  it("reports a syntax error as the command's failure and goes on", async () => {
    const s = session();
    const broken = await s.run("if then fi (", undefined);
    expect(broken.rc).not.toBe(0);
    expect(broken.stderr.toString()).toMatch(/syntax|unexpected/i);
    expect((await s.run("echo ok", undefined)).stdout.toString()).toBe("ok\n");
  });

  it("feeds binary input to the command only, and a command reading stdin gets nothing else", async () => {
    const s = session();
    const bytes = Buffer.from([0, 1, 2, 255, 10, 39, 34, 36]);
    const result = await s.run("od -An -tu1 | tr -s ' \\n' ' '", bytes);
    expect(result.stdout.toString().trim()).toBe("0 1 2 255 10 39 34 36");
    const empty = await s.run("cat", undefined);
    expect(empty.stdout.length).toBe(0);
    expect((await s.run("echo after", undefined)).stdout.toString()).toBe("after\n");
  });

  it("returns large output whole", async () => {
    const s = session();
    const result = await s.run("head -c 3000000 /dev/zero", undefined);
    expect(result.stdout.length).toBe(3_000_000);
  });

  it("stops a command that runs too long and refuses further commands", async () => {
    const s = session();
    await expect(s.run("sleep 5", undefined, 200)).rejects.toMatchObject({
      code: "COMMAND_TIMEOUT",
    });
    expect(s.alive).toBe(false);
    await expect(s.run("true", undefined)).rejects.toMatchObject({ family: "connection" });
  });

  it("runs commands sent at once one after another", async () => {
    const s = session();
    const results = await Promise.all(
      ["a", "b", "c"].map((w) => s.run(`sleep 0.05; echo ${w}`, undefined)),
    );
    expect(results.map((r) => r.stdout.toString())).toEqual(["a\n", "b\n", "c\n"]);
  });
});
