import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostPath, sshRoot } from "../helpers/lab.js";
import { playTasks } from "./modules-helpers.js";

const DIR = "/var/cache/omens-apt-test";
const PKG = "omens-tiny";

/** Builds a tiny architecture-independent package with one file, as a release would ship. */
function buildDeb(version: string): string {
  const root = mkdtempSync(join(tmpdir(), "omens-deb-"));
  mkdirSync(join(root, "DEBIAN"));
  mkdirSync(join(root, "usr/share", PKG), { recursive: true });
  writeFileSync(
    join(root, "DEBIAN/control"),
    `Package: ${PKG}\nVersion: ${version}\nArchitecture: all\nMaintainer: Omens tests <tests@omens.invalid>\nDescription: a tiny package for the apt module tests\n`,
  );
  writeFileSync(join(root, "usr/share", PKG, "version"), `${version}\n`);
  const deb = join(root, `${PKG}_${version}_all.deb`);
  execFileSync("dpkg-deb", ["--build", "--root-owner-group", root, deb], { stdio: "ignore" });
  return deb;
}

const installed = () =>
  sshRoot(
    "auth",
    `dpkg-query -W -f='\${Version} \${db:Status-Status}' ${PKG} 2>/dev/null; cat /usr/share/${PKG}/version 2>/dev/null; true`,
  );
const deb = (version: string, extra: Record<string, unknown> = {}) => ({
  module: "apt",
  args: { name: PKG, deb: `${DIR}/${PKG}_${version}_all.deb`, ...extra },
});

describe("apt on a lab host, with local .deb files (the lab has no route out)", () => {
  beforeAll(() => {
    sshRoot("auth", `dpkg --purge ${PKG} >/dev/null 2>&1; rm -rf ${DIR} && mkdir -p ${DIR}`);
    for (const version of ["1.0", "1.1"]) {
      const file = buildDeb(version);
      copyFileSync(file, hostPath("auth", `${DIR}/${PKG}_${version}_all.deb`));
    }
  });
  afterAll(() => sshRoot("auth", `dpkg --purge ${PKG} >/dev/null 2>&1; rm -rf ${DIR}`));

  it("check mode predicts the install and installs nothing", async () => {
    const run = await playTasks([deb("1.0")], ["--check", "--diff"]);
    expect(run.code, run.stdout).toBe(0);
    expect(run.results[0]).toMatchObject({
      status: "changed",
      diff: [{ path: `package ${PKG}`, attributes: ["absent -> 1.0"] }],
    });
    expect(installed()).toBe("");
  });

  it("installs a .deb, then is ok on the second run and by name", async () => {
    const first = await playTasks([deb("1.0")]);
    expect(first.results[0]?.status, first.stdout).toBe("changed");
    expect(installed()).toBe("1.0 installed1.0\n");
    const second = await playTasks([deb("1.0"), { module: "apt", args: { name: [PKG, "curl"] } }]);
    expect(second.results.map((r) => r.status)).toEqual(["ok", "ok"]);
    expect(second.results[1]?.reason).toMatch(new RegExp(`^installed: ${PKG} 1.0, curl \\S+$`));
  });

  it("upgrades to a newer .deb and says from which version", async () => {
    const run = await playTasks([deb("1.1")]);
    expect(run.results[0]).toMatchObject({
      status: "changed",
      reason: `${PKG} is at 1.0; ${DIR}/${PKG}_1.1_all.deb has 1.1`,
    });
    expect(installed()).toBe("1.1 installed1.1\n");
  });

  it("removes the package with state absent (check mode first), then is ok", async () => {
    const task = { module: "apt", args: { name: PKG, state: "absent", purge: true } };
    const check = await playTasks([task], ["--check"]);
    expect(check.results[0]).toMatchObject({ status: "changed", reason: `${PKG}: 1.1 -> absent` });
    expect(installed()).toBe("1.1 installed1.1\n");
    const run = await playTasks([task]);
    expect(run.results[0]?.status).toBe("changed");
    expect(installed()).toBe("");
    expect((await playTasks([task])).results[0]?.status).toBe("ok");
  });

  it("fails with apt-get's message, exit code, host, task and file:line for an unknown package", async () => {
    const run = await playTasks([{ module: "apt", args: { name: "omens-no-such-package" } }]);
    expect(run.code).toBe(2);
    const error = run.results[0]?.error ?? "";
    expect(error).toContain("exit code 100");
    expect(error).toContain("Unable to locate package omens-no-such-package");
    expect(error).toMatch(
      /host auth, task "apt omens-no-such-package", at .*tasks-from-env\.ts:\d+/,
    );
  });

  it("refuses a .deb holding another package, and invalid arguments before contacting the host", async () => {
    const other = await playTasks([deb("1.0", { name: "curl" })]);
    expect(other.results[0]?.error).toContain(`holds package ${PKG}, not curl`);
    const relative = await playTasks([{ module: "apt", args: { deb: "tiny.deb" } }]);
    expect(relative.code).toBe(5);
    expect(relative.stderr + relative.stdout).toContain(
      `"deb" must be an absolute path to a .deb file`,
    );
  });
});
