import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// --list-tasks builds the plays from the playbook and inventory alone: no host is contacted.
const root = resolve(import.meta.dirname, "../..");
const list = async (...flags: string[]) => {
  const args = [
    "bin/omens-play.js",
    "test/fixtures/runner/tags-elsewhere.ts",
    "-i",
    "test/fixtures/lint/inventory.yaml",
    "--list-tasks",
    ...flags,
  ];
  try {
    const { stdout, stderr } = await promisify(execFile)("node", args, { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (error) {
    return error as { code: number; stdout: string; stderr: string };
  }
};

describe("tag names no task carries", () => {
  it("count the tags of a play whose hosts the inventory lacks as known", async () => {
    const run = await list("--tags", "away,missng");
    expect(run.code).toBe(0);
    expect(run.stderr).toBe(
      "warning: --tags: no task of the playbook has tag 'missng' (its tags: away, here)\n",
    );
  }, 30_000);

  it("refuse a --tags or --skip-tags list with no tag in it as bad usage", async () => {
    for (const flag of ["--tags", "--skip-tags"]) {
      const run = await list(flag, ",,");
      expect(run.code).toBe(5);
      expect(run.stderr).toContain(`${flag} names no tag`);
    }
  }, 30_000);
});
