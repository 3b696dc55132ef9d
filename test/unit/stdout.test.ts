import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { omensPlay, ROOT } from "../helpers/lab.js";

// stdout in --json and lint's json and sarif formats is machine input: it holds nothing but
// that output, whatever playbook code prints; and a reader that goes away never stops a run.
vi.setConfig({ testTimeout: 60_000 });
const playbook = join(ROOT, "test/fixtures/runner/chatty.ts");
const inventory = join(ROOT, "test/fixtures/bad/good.yaml");

describe("a terminal that reports no width", () => {
  it("gets plain lines, not the live list drawn one character per line", () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-notes-"));
    const notes = join(ROOT, "test/fixtures/runner/two-notes.ts");
    const cli = `${process.execPath} ${join(ROOT, "bin/omens-play.js")} ${notes} -i ${inventory}`;
    // script(1) gives the run a pseudo-terminal; stty sizes it 0 by 0, as an unsized one is.
    const run = spawnSync("script", ["-qec", `stty cols 0 rows 0; ${cli}`, "/dev/null"], {
      cwd: ROOT,
      env: { ...process.env, OMENS_NOTES_DIR: dir, NO_COLOR: "1" },
      encoding: "utf8",
    });
    const lines = run.stdout.replaceAll("\r", "").split("\n");
    expect(lines, run.stdout).toContain(`PLAY all ${".".repeat(47)} [box1]`);
    expect(
      lines.some((l) => /^ {2}~ {2}one +box1 +changed /.test(l)),
      run.stdout,
    ).toBe(true);
    // The live list at no width writes a character or two per line.
    expect(lines.filter((l) => /^\s*\S{1,2}\s*$/.test(l))).toEqual([]);
  });
});

describe("a stdout that carries JSON", () => {
  it("--json holds only events; what the playbook prints goes to stderr", async () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-chatty-"));
    const run = await omensPlay([playbook, "-i", inventory, "--json"], { OMENS_CHATTY_DIR: dir });
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { kind: string }).kind).at(-1)).toBe("recap");
    expect(run.stderr).toContain("chatty: loading");
    expect(run.stderr).toContain("chatty: building for box1");
  });

  it.each(["json", "sarif"])("lint --format %s is one JSON document", (format) => {
    const args = ["lint", playbook, "-i", inventory, "--no-typecheck", "--format", format];
    const lint = spawnSync(process.execPath, [join(ROOT, "bin/omens-play.js"), ...args], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect(lint.status, lint.stderr).toBe(0);
    expect(() => JSON.parse(lint.stdout) as unknown).not.toThrow();
    expect(lint.stderr).toContain("chatty: building for box1");
  });

  it("a reader that closes early does not stop the run: it ends and does its work", () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-chatty-"));
    const cli = [process.execPath, join(ROOT, "bin/omens-play.js"), playbook, "-i", inventory];
    const piped = spawnSync(
      "bash",
      ["-c", `"$@" --json | head -c 1 >/dev/null; echo "\${PIPESTATUS[0]}"`, "bash", ...cli],
      { cwd: ROOT, env: { ...process.env, OMENS_CHATTY_DIR: dir }, encoding: "utf8" },
    );
    expect(piped.stdout.trim(), piped.stderr).toBe("0");
    expect(piped.stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(existsSync(join(dir, "note.txt"))).toBe(true);
  });

  it("a reader of stdout and stderr that closes early does not stop the run either", () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-notes-"));
    const notes = join(ROOT, "test/fixtures/runner/two-notes.ts");
    const cli = [process.execPath, join(ROOT, "bin/omens-play.js"), notes, "-i", inventory];
    const piped = spawnSync(
      "bash",
      ["-c", `"$@" 2>&1 | head -c 1 >/dev/null; echo "\${PIPESTATUS[0]}"`, "bash", ...cli],
      { cwd: ROOT, env: { ...process.env, OMENS_NOTES_DIR: dir }, encoding: "utf8" },
    );
    expect(piped.stdout.trim(), piped.stderr).toBe("0");
    expect(readFileSync(join(dir, "two.txt"), "utf8")).toBe("two\n");
  });
});
