import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { BAD_INPUT_CASES as cases } from "../fixtures/bad/cases.js";
import { omensPlay, ROOT, type PlayRun } from "../helpers/lab.js";

// Bad input: each case gives one clear error naming file and line, exits with the input-error
// code (5) before any host is contacted, and prints no stack trace unless -vvv. Copies of
// binary, non-UTF-8 and very large files are byte for byte, with diffs that say what they hide.
// Each case starts the real CLI (a Node process loading TypeScript): seconds, not milliseconds.
vi.setConfig({ testTimeout: 60_000 });
const BAD = "test/fixtures/bad";
const fixture = (name: string) => join(ROOT, BAD, name);
const GOOD_INVENTORY = fixture("good.yaml");
const STACK_FRAME = /^\s+at .+:\d+:\d+\)?$/m;

function expectInputError(run: PlayRun, location: RegExp, message: string | RegExp) {
  expect(run.code, run.stderr + run.stdout).toBe(5);
  const errors = run.stderr.split("\n").filter((l) => l.startsWith("error: "));
  expect(errors).toHaveLength(1);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).toMatch(location);
  expect(run.stderr).not.toMatch(STACK_FRAME);
  expect(run.stdout).not.toContain("PLAY ");
}

describe("bad input gives one clear error, file and line, exit code 5", () => {
  it.each(cases)("%s", async (_name, inventory, playbook, location, message) => {
    const run = await omensPlay([fixture(playbook), "-i", fixture(inventory)]);
    expectInputError(run, location, message);
  });

  it("a playbook with a TypeScript syntax error names the file, line and column", async () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-bad-"));
    const file = join(dir, "syntax.mts");
    const engine = join(ROOT, "engine/index.js");
    writeFileSync(
      file,
      `import { definePlaybook } from "${engine}";\n\nexport default definePlaybook("x", [\n  play(\n];\n`,
    );
    const run = await omensPlay([file, "-i", GOOD_INVENTORY]);
    expectInputError(run, /syntax\.m?ts:5:\d+\)/, 'Unexpected "]"');
  });

  it("-vvv adds the stack trace of the original error", async () => {
    const run = await omensPlay([fixture("throws.ts"), "-i", GOOD_INVENTORY, "-vvv"]);
    expect(run.code).toBe(5);
    expect(run.stderr).toMatch(/at siteHosts \(.*throws\.ts:5:9\)/);
  });

  it.each([
    ["an unknown option", ["--frobnicate"], /Unknown option '--frobnicate'/],
    ["an option without its value", ["--limit"], /'-l, --limit <value>' argument missing/],
    ["--report without a file", ["--report"], /'--report <value>' argument missing/],
  ])("%s is a usage error (exit 5), with the usage text", async (_name, args, message) => {
    const run = await omensPlay([fixture("ping.ts"), "-i", GOOD_INVENTORY, ...args]);
    expect(run.code, run.stderr).toBe(5);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toContain("usage: omens-play PLAYBOOK.ts [options]");
    expect(run.stderr).not.toMatch(STACK_FRAME);
  });

  it("a host list file that does not exist (--limit @file) is bad input", async () => {
    const run = await omensPlay([
      fixture("ping.ts"),
      "-i",
      GOOD_INVENTORY,
      "-l",
      "@/nonexistent/hosts",
    ]);
    expectInputError(run, /\/nonexistent\/hosts\)/, "cannot read host list /nonexistent/hosts");
  });

  it("unknown hosts or groups in a pattern warn, open no connection and exit 0 (case B10)", async () => {
    const run = await omensPlay([fixture("ping.ts"), "-i", GOOD_INVENTORY, "-l", "nosuch,ghosts"]);
    expect(run.code).toBe(0);
    expect(run.stderr + run.stdout).toContain("pattern 'nosuch' matched no hosts");
    expect(run.stderr + run.stdout).toContain("pattern 'ghosts' matched no hosts");
    expect(run.stdout).not.toContain("box1");
  });
});

describe("binary, non-UTF-8 and very large files", () => {
  const copyFile = async (content: Buffer, before?: Buffer) => {
    const dir = mkdtempSync(join(tmpdir(), "omens-bytes-"));
    const src = join(dir, "src.bin");
    const dest = join(dir, "dest.bin");
    writeFileSync(src, content);
    if (before) writeFileSync(dest, before);
    const env = { OMENS_SRC: src, OMENS_DEST: dest };
    const run = await omensPlay(
      [fixture("copy-src.ts"), "-i", GOOD_INVENTORY, "--diff", "--json"],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    const diffs = run.events.flatMap((e) => (e.diff as { content?: string }[] | undefined) ?? []);
    return { written: readFileSync(dest), diff: diffs[0]?.content ?? "" };
  };

  it("a binary file is copied byte for byte; its diff says 'binary files differ'", async () => {
    const bytes = Buffer.concat([Buffer.from([0, 255, 0xc3, 0x28, 10]), randomBytes(4096)]);
    const { written, diff } = await copyFile(bytes, Buffer.from("old text\n"));
    expect(written.equals(bytes)).toBe(true);
    expect(diff).toBe("binary files differ");
  });

  it("a Latin-1 (non-UTF-8) text file is copied byte for byte, never re-encoded", async () => {
    const latin1 = Buffer.from("caf\xe9 cr\xe8me\nna\xefve\n", "latin1");
    const { written, diff } = await copyFile(latin1, Buffer.from("cafe\n"));
    expect(written.equals(latin1)).toBe(true);
    expect(diff).toBe("binary files differ");
  });

  it("a file over 1 MiB is compared by hash; its diff says it is too large", async () => {
    const large = Buffer.from("line\n".repeat(300_000));
    const { written, diff } = await copyFile(large, Buffer.from("small\n"));
    expect(written.equals(large)).toBe(true);
    expect(diff).toBe(`files differ (too large to diff: 6 -> ${large.length} bytes)`);
  });

  it("a diff of more than 400 lines is cut and says how many lines it leaves out", async () => {
    const before = Buffer.from(Array.from({ length: 1000 }, (_, i) => `a${i}\n`).join(""));
    const after = Buffer.from(Array.from({ length: 1000 }, (_, i) => `b${i}\n`).join(""));
    const { written, diff } = await copyFile(after, before);
    expect(written.equals(after)).toBe(true);
    expect(diff.split("\n")).toHaveLength(401);
    expect(diff).toMatch(/\.\.\. diff cut: \d+ more lines not shown$/);
  });
});
