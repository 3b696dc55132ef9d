import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sshRoot } from "../helpers/lab.js";
import { playTasks } from "./modules-helpers.js";

const cleanup = () =>
  sshRoot(
    "auth",
    "userdel -r omtest 2>/dev/null; groupdel omtest 2>/dev/null; groupdel omextra 2>/dev/null; groupdel omsvc 2>/dev/null; true",
  );
const account = () =>
  sshRoot("auth", "getent passwd omtest; id -Gn omtest; stat -c %U /home/omtest");
const wanted = [
  { module: "group", args: { name: "omsvc", system: true, gid: 955 } },
  { module: "group", args: { name: "omextra" } },
  {
    module: "user",
    args: { name: "omtest", uid: 1500, groups: ["omsvc"], shell: "/bin/sh", comment: "Omens test" },
  },
];

describe("user and group on a lab host", () => {
  beforeAll(cleanup);
  afterAll(cleanup);

  it("check mode predicts the group and user creation and changes nothing", async () => {
    const run = await playTasks(wanted, ["--check"]);
    expect(run.code, run.stdout).toBe(0);
    expect(run.results.map((r) => r.status)).toEqual(["changed", "changed", "changed"]);
    expect(sshRoot("auth", "getent passwd omtest; getent group omsvc; echo done")).toBe("done\n");
  });

  it("creates the groups and the user with its home, then is ok on the second run", async () => {
    const first = await playTasks(wanted);
    expect(first.code, first.stdout).toBe(0);
    expect(first.results.map((r) => r.status)).toEqual(["changed", "changed", "changed"]);
    expect(sshRoot("auth", "getent group omsvc")).toBe("omsvc:x:955:omtest\n");
    expect(account()).toBe(
      "omtest:x:1500:1500:Omens test:/home/omtest:/bin/sh\nomtest omsvc\nomtest\n",
    );
    const second = await playTasks(wanted);
    expect(second.results.map((r) => r.status)).toEqual(["ok", "ok", "ok"]);
  });

  it("updates the shell and the groups, and shows each attribute in the diff", async () => {
    const tasks = [
      { module: "user", args: { name: "omtest", groups: ["omextra"], shell: "/bin/bash" } },
    ];
    const check = await playTasks(tasks, ["--check", "--diff"]);
    expect(check.results[0]?.diff).toEqual([
      {
        path: "user omtest",
        attributes: ["groups omsvc -> omextra", "shell /bin/sh -> /bin/bash"],
      },
    ]);
    expect(sshRoot("auth", "id -Gn omtest")).toBe("omtest omsvc\n");
    const run = await playTasks(tasks);
    expect(run.results[0]?.status).toBe("changed");
    expect(sshRoot("auth", "id -Gn omtest; getent passwd omtest | cut -d: -f7")).toBe(
      "omtest omextra\n/bin/bash\n",
    );
  });

  it("fails with useradd's message, the host, task and file:line when the primary group is missing", async () => {
    const run = await playTasks([
      { module: "user", args: { name: "omnogroup", group: "nosuchgroup" } },
    ]);
    expect(run.code).toBe(2);
    const error = run.results[0]?.error ?? "";
    expect(error).toContain("exit code 6");
    expect(error).toContain("group 'nosuchgroup' does not exist");
    expect(error).toMatch(/host auth, task "user omnogroup", at .*tasks-from-env\.ts:\d+/);
  });

  it("removes the user and the groups with state absent, then is ok", async () => {
    const gone = [
      { module: "user", args: { name: "omtest", state: "absent", removeHome: true } },
      { module: "group", args: { name: "omsvc", state: "absent" } },
    ];
    const first = await playTasks(gone);
    expect(first.results.map((r) => r.status)).toEqual(["changed", "changed"]);
    expect(sshRoot("auth", "getent passwd omtest; test -e /home/omtest || echo no-home")).toBe(
      "no-home\n",
    );
    const second = await playTasks(gone);
    expect(second.results.map((r) => r.status)).toEqual(["ok", "ok"]);
  });
});
