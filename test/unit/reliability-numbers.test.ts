import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BAD_INPUT_CASES } from "../fixtures/bad/cases.js";
import { ROOT } from "../helpers/lab.js";

// The numbers of the README's Reliability section are counted from the test files, so they
// cannot drift from what the tests do.
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const titles = (path: string) =>
  [...read(path).matchAll(/^\s*it\(\s*"([^"]+)"/gm)].map((m) => m[1] ?? "");
const readmeNumber = (row: string) => {
  const match = new RegExp(`^\\| ${row} \\| \\*\\*(\\d+)\\*\\*`, "m").exec(read("README.md"));
  return Number(match?.[1]);
};

describe("the README's reliability numbers", () => {
  it("faults injected: the fault tests that are neither secret runs nor controls", () => {
    const files = readdirSync(join(ROOT, "test/faults")).filter(
      (f) => f.endsWith(".test.ts") && f !== "secrets.test.ts",
    );
    const faults = files
      .flatMap((f) => titles(`test/faults/${f}`))
      .filter((t) => !t.startsWith("control:"));
    expect(readmeNumber("faults injected")).toBe(faults.length);
  });

  it("bad inputs tried: the table of bad files plus the other bad-input cases", () => {
    const others = titles("test/unit/bad-input.test.ts").filter((t) => !t.startsWith("-vvv"));
    expect(readmeNumber("bad inputs tried")).toBe(BAD_INPUT_CASES.length + others.length);
  });

  it("secrets leaked: the runs searched and the values searched match the README", () => {
    const runs = titles("test/faults/secrets.test.ts").filter((t) => !t.startsWith("control:"));
    const values =
      /const VALUES = \{([^}]*)\}/.exec(read("test/faults/secrets.test.ts"))?.[1] ?? "";
    const searched = (values.match(/^\s+\w+: "/gm) ?? []).length + 1; // and the OpenBao token
    const row = /^\| secrets leaked \| \*\*0\*\* \| (\d+) values searched in (\d+) runs/m.exec(
      read("README.md"),
    );
    expect([Number(row?.[1]), Number(row?.[2])]).toEqual([searched, runs.length]);
  });
});
