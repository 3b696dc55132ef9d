import { statSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CaseFiles, runCase, statuses } from "../helpers/cases.js";
import { hashHostTree, hostPath, results, sshRoot } from "../helpers/lab.js";

// B05: a mode written as a number cannot show its base, so it is refused before any host is
// contacted; the same mode as a string gives the setgid folder it says.
const files = new CaseFiles("ca", "/srv/omens-cases/b05");
const run = (form: "number" | "string") =>
  runCase("test/fixtures/cases/b05-mode.ts", { OMENS_B05_DIR: files.dir, OMENS_B05_FORM: form });

describe("B05: a numeric mode 2755", () => {
  it("is refused before any host is touched, naming the task, the value and the fix", async () => {
    files.reset();
    const before = hashHostTree("ca");
    const refused = await run("number");
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain("shared folder");
    expect(refused.stderr).toContain("2755");
    expect(refused.stderr).toContain("0o5303");
    expect(refused.stderr).toContain('"2755"');
    expect(refused.stderr).toMatch(/b05-mode\.ts:\d+/);
    expect(results(refused)).toEqual([]);
    expect(hashHostTree("ca")).toBe(before);
  });

  it("as a string, makes a setgid folder drwxr-sr-x, then stays ok", async () => {
    files.reset();
    const first = await run("string");
    expect(first.code, first.stderr).toBe(0);
    expect(statuses(first, "ca")).toEqual({ "shared folder": "changed" });
    expect(statSync(hostPath("ca", `${files.dir}/shared`)).mode & 0o7777).toBe(0o2755);
    expect(sshRoot("ca", `stat -c '%a %A' ${files.dir}/shared`).trim()).toBe("2755 drwxr-sr-x");
    const second = await run("string");
    expect(statuses(second, "ca")).toEqual({ "shared folder": "ok" });
  });
});
