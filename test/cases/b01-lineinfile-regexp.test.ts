import { beforeEach, describe, expect, it } from "vitest";
import { CaseFiles, runCase, statuses } from "../helpers/cases.js";

// B01: when regexp matches, the last matching line is replaced where it stands and the
// insertafter/insertbefore anchor is not used; the anchor only places a line nothing matched.
const files = new CaseFiles("ca", "/srv/omens-cases/b01");
const run = (...flags: string[]) =>
  runCase("test/fixtures/cases/b01-lineinfile-regexp.ts", { OMENS_B01_DIR: files.dir }, ...flags);
const names = ["after.ini", "before.ini"];

describe("B01: lineinfile with regexp and an anchor", () => {
  beforeEach(() => files.reset());

  it("replaces the matching line below the anchor in place, then stays ok", async () => {
    const original = "[core]\nname=demo\n[net]\nport=80\n";
    files.reset({ "after.ini": original, "before.ini": original });

    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    expect(Object.values(statuses(first, "ca"))).toEqual(["changed", "changed"]);
    const expected = "[core]\nname=demo\n[net]\nport=8080\n";
    expect(files.readAll(names)).toEqual({ "after.ini": expected, "before.ini": expected });

    for (const flags of [[], ["--check"]]) {
      const again = await run(...flags);
      expect(Object.values(statuses(again, "ca"))).toEqual(["ok", "ok"]);
      expect(files.readAll(names)).toEqual({ "after.ini": expected, "before.ini": expected });
    }
  });

  it("uses the anchor when nothing matches, and converges", async () => {
    const original = "[core]\nname=demo\n[net]\n";
    files.reset({ "after.ini": original, "before.ini": original });

    const check = await run("--check");
    expect(Object.values(statuses(check, "ca"))).toEqual(["changed", "changed"]);
    expect(files.readAll(names)).toEqual({ "after.ini": original, "before.ini": original });

    const first = await run();
    expect(Object.values(statuses(first, "ca"))).toEqual(["changed", "changed"]);
    expect(files.readAll(names)).toEqual({
      "after.ini": "[core]\nport=8080\nname=demo\n[net]\n",
      "before.ini": "[core]\nname=demo\nport=8080\n[net]\n",
    });
    const second = await run();
    expect(Object.values(statuses(second, "ca"))).toEqual(["ok", "ok"]);
  });
});
