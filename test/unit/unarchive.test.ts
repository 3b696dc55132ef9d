import { describe, expect, it } from "vitest";
import { parseCompare, stripMembers, unarchiveModule } from "../../engine/modules/unarchive.js";
import type { PlanContext } from "../../engine/modules/types.js";

const ctx = {} as PlanContext;
const args = (extra: Record<string, unknown> = {}) =>
  unarchiveModule.validate({ src: "/opt/r/r-1.tar.gz", dest: "/opt/r/1", ...extra }, {});
const members = ["bin", "bin/x", "README"];

describe("unarchive planning", () => {
  it("extracts into dest when the creates path is absent", () => {
    const valid = args({ creates: "/opt/r/1/bin/x", stripComponents: 1 });
    const plan = unarchiveModule.plan(
      valid,
      { kind: "listed", members, differences: undefined },
      ctx,
    );
    expect(plan.status).toBe("changed");
    expect(plan.reason).toBe("/opt/r/1/bin/x is absent");
    expect(plan.ops).toEqual([
      {
        kind: "exec",
        command: "tar -xzf /opt/r/r-1.tar.gz -C /opt/r/1 --strip-components=1",
        path: "/opt/r/1",
      },
    ]);
  });

  it("extracts again when entries differ, naming them, and chowns the entries when owner is set", () => {
    const differences = [
      { path: "README", what: "size differs" },
      { path: "bin/x", what: "missing" },
    ];
    const plan = unarchiveModule.plan(
      args({ owner: "spire" }),
      { kind: "listed", members, differences },
      ctx,
    );
    expect(plan.reason).toBe("2 of 3 entries differ: README (size differs), bin/x (missing)");
    expect(plan.ops[1]).toMatchObject({ kind: "exec", stdin: "bin\0bin/x\0README" });
    expect(plan.diff?.[0]?.attributes).toEqual(["README: size differs", "bin/x: missing"]);
  });

  it("is ok when dest matches the archive, or when the creates path exists", () => {
    expect(
      unarchiveModule.plan(args(), { kind: "listed", members, differences: [] }, ctx),
    ).toMatchObject({ status: "ok", reason: "/opt/r/1 matches /opt/r/r-1.tar.gz (3 entries)" });
    expect(
      unarchiveModule.plan(args({ creates: "/opt/r/1/x" }), { kind: "created" }, ctx),
    ).toMatchObject({
      status: "ok",
      reason: "/opt/r/1/x exists",
    });
  });

  it("fails when the archive or dest is missing, saying which", () => {
    const plan = unarchiveModule.plan(
      args(),
      { kind: "missing", which: "src", fact: { kind: "absent" } },
      ctx,
    );
    expect(plan.reason).toContain("archive /opt/r/r-1.tar.gz is absent on the host");
    const dest = unarchiveModule.plan(
      args(),
      { kind: "missing", which: "dest", fact: { kind: "absent" } },
      ctx,
    );
    expect(dest.reason).toContain(
      "dest /opt/r/1 is absent; unarchive extracts into an existing folder",
    );
  });

  it("refuses relative paths, a non-.tar.gz src and a negative stripComponents", () => {
    expect(() => args({ dest: "opt" })).toThrow(/"dest" must be an absolute path, got "opt"/);
    expect(() => args({ src: "/opt/r.zip" })).toThrow(/must be a .tar.gz or .tgz file/);
    expect(() => args({ stripComponents: -1 })).toThrow(/"stripComponents" must be a whole number/);
    expect(() => args({ mode: "0644" })).toThrow(/unknown argument "mode"/);
  });
});

describe("reading tar's listing and compare report", () => {
  it("drops stripped components and the entries they empty", () => {
    expect(stripMembers("rel-1/\nrel-1/bin/\nrel-1/bin/x\ntop\n", 1)).toEqual(["bin", "bin/x"]);
    expect(stripMembers("./\n./a\n", 0)).toEqual([".", "./a"]);
  });

  it("keeps content, mode and missing differences, and ignores times and managed owners", () => {
    const report = [
      "tar: : Warning: Cannot stat: No such file or directory",
      "tar: lnk: Warning: Cannot readlink: No such file or directory",
      "README: Size differs",
      "bin/x: Mode differs",
      "bin/y: Mod time differs",
      "bin/z: Uid differs",
    ].join("\n");
    expect(parseCompare(report, true)).toEqual([
      { path: "lnk", what: "missing" },
      { path: "README", what: "size differs" },
      { path: "bin/x", what: "mode differs" },
    ]);
    expect(parseCompare(report, false).map((d) => d.path)).toContain("bin/z");
  });
});
