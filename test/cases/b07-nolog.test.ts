import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { CaseFiles, runCase, statuses } from "../helpers/cases.js";
import { labInventory, omensPlay, type PlayRun } from "../helpers/lab.js";

// B07: a noLog task shows no secret anywhere, whichever module it uses and however it ends:
// not in diffs, commands, command output, JSON events, error messages or the retry file.
const files = new CaseFiles("ca", "/srv/omens-cases/b07");
const OLD = "password=OLD-s3cret-111";
const SECRETS = [
  "OLD-s3cret-111",
  "NEW-s3cret-222",
  "TPL-s3cret-333",
  "CPY-s3cret-444",
  "BLK-s3cret-555",
  "ERR-s3cret-666",
  "ERR-s3cret-777",
  "ERR-s3cret-888",
  "ERR-s3cret-999",
];

const retryFile = () => join(mkdtempSync(join(tmpdir(), "omens-b07-")), "retry");
const run = (env: Record<string, string>, ...flags: string[]) =>
  runCase("test/fixtures/cases/b07-nolog.ts", { OMENS_B07_DIR: files.dir, ...env }, ...flags);

function leaks(run: PlayRun, extra = ""): string[] {
  const all = run.stdout + run.stderr + extra;
  return SECRETS.filter((s) => all.includes(s));
}

describe("B07: noLog hides secrets in every output", () => {
  beforeEach(() =>
    files.reset({
      "db.conf": `user=app\n${OLD}\n`,
      "tpl.conf": `user=app\n${OLD}\n`,
      "copy.conf": `user=app\n${OLD}\n`,
      "block.conf": "user=app\n",
    }),
  );

  it("check with diff and max verbosity changes nothing and prints no secret", async () => {
    const check = await run({}, "--check", "--diff", "-vvv");
    expect(check.code, check.stderr).toBe(0);
    expect(Object.values(statuses(check, "ca"))).toEqual([
      "changed",
      "changed",
      "changed",
      "changed",
    ]);
    const diffs = check.events.flatMap((e) => (e.diff as { hidden?: boolean }[] | undefined) ?? []);
    expect(diffs.length).toBe(4);
    expect(diffs.every((d) => d.hidden === true)).toBe(true);
    expect(leaks(check)).toEqual([]);
    expect(files.read("db.conf")).toBe(`user=app\n${OLD}\n`);
  });

  it("a real run with diff writes the new secrets and prints none of them", async () => {
    const real = await run({}, "--diff", "-vvv");
    expect(real.code, real.stderr).toBe(0);
    expect(leaks(real)).toEqual([]);
    expect(files.read("db.conf")).toBe("user=app\npassword=NEW-s3cret-222\n");
    expect(files.read("tpl.conf")).toContain("password=TPL-s3cret-333");
    expect(files.read("copy.conf")).toBe("user=app\npassword=CPY-s3cret-444\n");
    expect(files.read("block.conf")).toContain("password=BLK-s3cret-555");
  });

  it("failing noLog tasks report failure without their secrets, also in the retry file", async () => {
    const retry = retryFile();
    const failed = await run({ OMENS_B07_FAIL: "1" }, "--diff", "-vvv", "--retry-file", retry);
    expect(failed.code).toBe(2);
    expect(failed.recap.ca?.failed).toBeGreaterThanOrEqual(1);
    expect(existsSync(retry)).toBe(true);
    expect(leaks(failed, readFileSync(retry, "utf8"))).toEqual([]);
  });

  it("the plain renderer shows the marker in place of each diff", async () => {
    const plain = await omensPlay(
      ["test/fixtures/cases/b07-nolog.ts", "-i", labInventory(), "--check", "--diff"],
      { OMENS_B07_DIR: files.dir },
    );
    expect(plain.stdout.split("diff hidden (noLog)").length - 1).toBe(4);
    expect(leaks(plain)).toEqual([]);
  });

  it("control: without noLog the same run shows the secrets, so the checks above can see a leak", async () => {
    const shown = await run({ OMENS_B07_NOLOG: "0" }, "--check", "--diff");
    expect(leaks(shown)).toEqual(expect.arrayContaining(["OLD-s3cret-111", "NEW-s3cret-222"]));
  });
});
