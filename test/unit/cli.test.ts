import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { command, definePlaybook, play, type Playbook } from "../../engine/index.js";
import { main } from "../../engine/cli.js";

/** A terminal that keeps what the CLI prints. */
function recordingTerminal() {
  const out: string[] = [];
  const err: string[] = [];
  const terminal = {
    out: (l: string) => void out.push(l),
    err: (l: string) => void err.push(l),
    color: false,
  };
  return { terminal, out, err };
}

/**
 * A folder with an inventory of two hosts run on this machine and a playbook file; `run` gives
 * the CLI that file, importing `playbook` for it, with the inventory and the given options.
 */
function localSite(playbook: (dir: string) => Playbook) {
  const dir = mkdtempSync(join(tmpdir(), "omens-cli-"));
  const inventory = join(dir, "inventory.yaml");
  writeFileSync(
    inventory,
    "all:\n  hosts:\n    box1: { connection: local }\n    box2: { connection: local }\n",
  );
  const file = join(dir, "site.ts");
  writeFileSync(file, "// imported by the test's own importer\n");
  const run = async (...options: string[]) => {
    const recorded = recordingTerminal();
    const importer = () => Promise.resolve({ default: playbook(dir) });
    const code = await main([file, "-i", inventory, ...options], recorded.terminal, importer);
    return { code, ...recorded };
  };
  return { dir, run };
}

/** One play whose task fails on box2, after a shell command of the test's choosing. */
const failOnBox2 = (before: string) =>
  definePlaybook("site", [
    play("all", {
      tasks: (vars) => [
        command({
          name: "fail on box2",
          shell: `${before}; test ${String(vars.inventoryHostname)} != box2`,
        }),
      ],
    }),
  ]);

describe("usage errors", () => {
  it("name an unknown option in balanced quotes (exit 5)", async () => {
    const { terminal, err } = recordingTerminal();
    expect(await main(["site.ts", "--chek"], terminal)).toBe(5);
    const first = err.join("\n").split("\n")[0] ?? "";
    expect(first).toBe(
      "error: Unknown option '--chek'. A playbook file whose name starts with '-' goes after '--', as in: -- --chek",
    );
  });
});

describe("--limit", () => {
  it("refuses an empty or blank pattern as naming no host (exit 5)", async () => {
    for (const limit of ["", "  ", " , "]) {
      const { terminal, err } = recordingTerminal();
      expect(await main(["site.ts", "--limit", limit], terminal)).toBe(5);
      expect(err.join("\n")).toBe("error: --limit names no host");
    }
  });
});

describe("--retry-file", () => {
  it("refuses a folder that does not exist before any host is contacted (exit 5)", async () => {
    const { run } = localSite(() => failOnBox2("true"));
    const { code, out, err } = await run("--retry-file", "/nonexistent/omens/x.retry");
    expect(code).toBe(5);
    expect(err.join("\n")).toContain(
      "--retry-file /nonexistent/omens/x.retry: the folder /nonexistent/omens does not exist",
    );
    expect(out).toEqual([]);
  });

  it("refuses a path that is a folder before any host is contacted (exit 5)", async () => {
    const { dir, run } = localSite(() => failOnBox2("true"));
    const { code, out, err } = await run("--retry-file", dir);
    expect(code).toBe(5);
    expect(err.join("\n")).toContain(`--retry-file ${dir}: this is a folder, not a file`);
    expect(out).toEqual([]);
  });

  it("lists the failed host in the file it names", async () => {
    const { dir, run } = localSite(() => failOnBox2("true"));
    const { code, err } = await run("--retry-file", join(dir, "failed.retry"));
    expect(code).toBe(2);
    expect(readFileSync(join(dir, "failed.retry"), "utf8")).toBe("box2\n");
    expect(err.join("\n")).toContain(`retry with --limit @${join(dir, "failed.retry")}`);
  });

  it("is a warning, not a crash, when its folder is gone by the end of the run", async () => {
    const { dir, run } = localSite((dir) => failOnBox2(`rm -rf ${join(dir, "out")}`));
    mkdirSync(join(dir, "out"));
    const { code, out, err } = await run("--retry-file", join(dir, "out", "x.retry"));
    expect(code).toBe(2);
    expect(out.join("\n")).toMatch(/^RECAP/m);
    expect(err.join("\n")).toMatch(
      /^warning: cannot write the retry file .*out\/x\.retry: ENOENT/m,
    );
    expect(existsSync(join(dir, "out"))).toBe(false);
  });
});
