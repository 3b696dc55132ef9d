import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startFakeBao, type FakeBao } from "../helpers/bao.js";
import { LAB_HOSTS, labInventory, omensPlay, sshRoot, type PlayRun } from "../helpers/lab.js";

// Secrets from the environment, a 0600 file and OpenBao (a loopback HTTPS server answering
// KV v2) are written into files by every file module and carried by failing tasks. Across
// check and real runs at -vvv with --diff, JSON and plain output, and failures, no secret value
// appears in stdout, stderr or the retry file; a control run with the same values as plain
// strings shows that the search finds them when they do appear.
const dir = "/srv/omens-faults/secrets";
const VALUES = {
  env: "env-secret-A1b2C3d4",
  file: "file-secret-E5f6G7h8",
  bao: "bao-secret-I9j0K1l2",
  // An earlier value of the secret, in the file before this run: never a Secret in this run.
  rotated: "OLD-rotated-secret-777",
};
let bao: FakeBao;
let env: Record<string, string>;

function leaks(run: PlayRun, retryFile?: string): string[] {
  const retry = retryFile && existsSync(retryFile) ? readFileSync(retryFile, "utf8") : "";
  const all = run.stdout + run.stderr + retry;
  return [...Object.values(VALUES), bao.token].filter((v) => all.includes(v));
}

const play = (extra: Record<string, string>, ...flags: string[]) =>
  omensPlay(["test/fixtures/secrets.ts", "-i", labInventory(), "-vvv", "--diff", ...flags], {
    ...env,
    ...extra,
  });

describe("secrets never appear in any output", () => {
  beforeAll(async () => {
    bao = await startFakeBao({ "secret/omens/db": { password: VALUES.bao } });
    const secretFile = join(mkdtempSync(join(tmpdir(), "omens-secret-")), "token");
    writeFileSync(secretFile, VALUES.file + "\n", { mode: 0o600 });
    env = {
      OMENS_FAULT_DIR: dir,
      OMENS_SECRET_ENV: VALUES.env,
      OMENS_SECRET_FILE: secretFile,
      BAO_ADDR: bao.addr,
      BAO_TOKEN: bao.token,
      BAO_CACERT: bao.caCert,
    };
  });
  afterAll(() => bao.close());
  beforeEach(() => {
    for (const h of LAB_HOSTS)
      sshRoot(
        h,
        `rm -rf ${dir} && mkdir -p ${dir} && printf 'password=${VALUES.rotated}\\n' | tee ${dir}/app.conf ${dir}/db.ini ${dir}/env.secret > /dev/null`,
      );
  });

  it("check mode, JSON events, -vvv --diff: nothing leaks and nothing is written", async () => {
    const run = await play({}, "--check", "--json");
    expect(run.code, run.stderr).toBe(0);
    expect(run.events.some((e) => (e.diff as { why?: string }[] | undefined)?.[0]?.why)).toBe(true);
    expect(leaks(run)).toEqual([]);
    expect(sshRoot("ca", `cat ${dir}/app.conf`)).toBe(`password=${VALUES.rotated}\n`);
  });

  it("a real run, JSON events, -vvv --diff: the files hold the secrets, the output none", async () => {
    const run = await play({}, "--json");
    // The fixture's second probe is unhealthy on purpose: exit 3, and its detail is masked.
    expect(run.code, run.stderr).toBe(3);
    expect(leaks(run)).toEqual([]);
    const details = run.events.filter((e) => e.kind === "health").map((e) => String(e.detail));
    expect(details).toContain("password=********");
    expect(details.filter((d) => d.includes("********"))).toHaveLength(2 * LAB_HOSTS.length);
    for (const h of LAB_HOSTS) {
      expect(sshRoot(h, `cat ${dir}/env.secret`)).toBe(VALUES.env);
      expect(sshRoot(h, `cat ${dir}/app.conf`)).toContain(
        `password = ${VALUES.bao}\ntoken = ${VALUES.file}\n`,
      );
      expect(sshRoot(h, `cat ${dir}/db.ini`)).toBe(`password=${VALUES.bao}\n`);
      expect(sshRoot(h, `cat ${dir}/block.conf`)).toContain(`token=${VALUES.file}\n`);
    }
  });

  it("failing tasks that carry secrets, plain output and the retry file: nothing leaks", async () => {
    const retry = join(mkdtempSync(join(tmpdir(), "omens-secret-retry-")), "retry");
    const run = await play({ OMENS_SECRETS_FAIL: "1" }, "--retry-file", retry);
    expect(run.code).toBe(2);
    expect(run.stdout).toContain("a command that prints its secret and fails");
    expect(run.stdout).toContain("got ********");
    expect(existsSync(retry)).toBe(true);
    expect(leaks(run, retry)).toEqual([]);
  });

  it("failing tasks in check mode with JSON events: nothing leaks", async () => {
    const run = await play({ OMENS_SECRETS_FAIL: "1" }, "--check", "--json");
    expect(leaks(run)).toEqual([]);
  });

  it("control: the same values as plain strings are found by the same search", async () => {
    const run = await play(
      { OMENS_SECRETS_PLAIN: "1", OMENS_SECRETS_FAIL: "1" },
      "--check",
      "--json",
    );
    expect(leaks(run)).toEqual(expect.arrayContaining(Object.values(VALUES)));
  });
});
