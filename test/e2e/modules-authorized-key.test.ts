import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sshArgs, sshRoot } from "../helpers/lab.js";
import { playTasks } from "./modules-helpers.js";

const USER = "omkey";
const FILE = `/home/${USER}/.ssh/authorized_keys`;
const OLD = "ssh-ed25519 AAAAKEYONE alice@lap";
const dir = mkdtempSync(join(tmpdir(), "omens-key-"));
const keyPath = join(dir, "id_ed25519");
let key = "";

/** Logs in as the user with the new key through the host's real sshd. */
function loginAsUser(): string {
  return execFileSync("ssh", [...sshArgs("auth", { user: USER, key: keyPath }), "id -un"], {
    encoding: "utf8",
  });
}

describe("authorizedKey on a lab host, checked by logging in through sshd", () => {
  beforeAll(() => {
    execFileSync("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "ops@omens-test",
      "-f",
      keyPath,
    ]);
    key = readFileSync(`${keyPath}.pub`, "utf8").trim();
    sshRoot(
      "auth",
      `userdel -r ${USER} 2>/dev/null; useradd -m -s /bin/sh ${USER} && install -d -o ${USER} -g ${USER} -m 700 /home/${USER}/.ssh && printf '%s' '${OLD}' > ${FILE} && chown ${USER}: ${FILE} && chmod 600 ${FILE}`,
    );
  });
  afterAll(() => sshRoot("auth", `userdel -r ${USER} 2>/dev/null; true`));

  it("check mode predicts the change, and the file stays as it was", async () => {
    const run = await playTasks(
      [{ module: "authorizedKey", args: { user: USER, key } }],
      ["--check"],
    );
    expect(run.results[0]?.status, run.stdout).toBe("changed");
    expect(sshRoot("auth", `cat ${FILE}`)).toBe(OLD);
  });

  it("adds the key on its own line after a last line without newline, and sshd accepts it", async () => {
    const first = await playTasks([{ module: "authorizedKey", args: { user: USER, key } }]);
    expect(first.results[0]?.status, first.stdout).toBe("changed");
    expect(sshRoot("auth", `cat ${FILE}; stat -c '%U %a' ${FILE}`)).toBe(
      `${OLD}\n${key}\n${USER} 600\n`,
    );
    expect(loginAsUser()).toBe(`${USER}\n`);
    const second = await playTasks([{ module: "authorizedKey", args: { user: USER, key } }]);
    expect(second.results[0]?.status).toBe("ok");
  });

  it("removes the key with state absent, and sshd refuses it afterwards", async () => {
    const run = await playTasks([
      { module: "authorizedKey", args: { user: USER, key, state: "absent" } },
    ]);
    expect(run.results[0]?.status).toBe("changed");
    expect(sshRoot("auth", `cat ${FILE}`)).toBe(`${OLD}\n`);
    expect(() => loginAsUser()).toThrow();
  });

  it("fails for a user that does not exist, naming it", async () => {
    const run = await playTasks([{ module: "authorizedKey", args: { user: "omnobody", key } }]);
    expect(run.code).toBe(2);
    expect(run.results[0]?.error).toContain("user omnobody does not exist on the host");
  });
});
