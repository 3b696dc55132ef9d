import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { Finding } from "../../engine/lint/finding.js";
import { lint } from "../../engine/lint/lint.js";
import { typecheck } from "../../engine/lint/typecheck.js";
import { nativeCompiler, typecheckNative } from "../../engine/lint/typecheck-native.js";

const fixtures = resolve(import.meta.dirname, "../fixtures/lint");
const fixture = (name: string) => join(fixtures, name);

async function nativeFindings(files: string[]): Promise<Finding[]> {
  const result = await typecheckNative(files);
  if (result.kind !== "checked") throw new Error(`native compiler unusable: ${result.why}`);
  return result.findings;
}

// TypeScript 7 may list the members of a union in another order than 6 does
// ('A[] | A' for 'A | A[]'); everything else in a message must be the same.
const unionOrderFree = (message: string) =>
  message.replace(/'([^']*)'/g, (_, type: string) => `'${type.split(" | ").sort().join(" | ")}'`);

const comparable = (findings: Finding[]) =>
  findings
    .map((f) => [f.rule, f.where.file, f.where.line, f.where.column, unionOrderFree(f.message)])
    .sort((a, b) => String(a).localeCompare(String(b)));

describe("omens-play lint: the native TypeScript compiler", () => {
  it("is installed for this platform by npm ci", () => {
    expect(nativeCompiler()).toMatch(/@typescript[\\/]typescript-[a-z0-9]+-[a-z0-9]+/);
  });

  it("finds the same type errors as the compiler API, at the same places", async () => {
    const files = [fixture("typecheck/elaborate.ts")];
    const native = await nativeFindings(files);
    const api = typecheck(files);
    expect(comparable(native)).toEqual(comparable(api));
    expect(native.map((f) => [f.where.file, f.where.line, f.where.column]).sort()).toEqual([
      [fixture("typecheck/elaborate-helper.ts"), 2, 14],
      [fixture("typecheck/elaborate.ts"), 15, 14],
      [fixture("typecheck/elaborate.ts"), 18, 60],
      [fixture("typecheck/elaborate.ts"), 21, 36],
      // After "€" (one UTF-16 unit) and "𝄞" (two), columns count as the compiler API does.
      [fixture("typecheck/elaborate.ts"), 8, 52],
    ]);
    expect(native.find((f) => f.where.line === 15)?.message).toBe(
      "TS2322: Type '(port: string) => string' is not assignable to type '(port: number) => string'." +
        "\n    Types of parameters 'port' and 'port' are incompatible." +
        "\n      Type 'number' is not assignable to type 'string'.",
    );
  }, 60_000);

  it("type-checks every lint fixture and finds only the type error of type-error.ts", async () => {
    const files = readdirSync(fixtures)
      .filter((f) => f.endsWith(".ts"))
      .map(fixture);
    const found = await nativeFindings(files);
    expect(found.map((f) => [f.rule, f.where.file, f.where.line, f.where.column])).toEqual([
      ["type-error", fixture("type-error.ts"), 4, 7],
    ]);
    expect(found[0]?.message).toBe("TS2322: Type 'number' is not assignable to type 'string'.");
  }, 60_000);

  it("a syntax error in one playbook does not hide the type errors of the others", async () => {
    // Written at run time: a file that does not parse would fail the project's own format and
    // code checks. The folder is under typecheck/, which the project's tsconfig leaves out.
    const dir = mkdtempSync(join(fixture("typecheck"), "syntax-"));
    try {
      const typed = join(dir, "typed.ts");
      const broken = join(dir, "broken.ts");
      writeFileSync(typed, 'export const port: number = "8081";\n');
      writeFileSync(broken, "export const conf = { port: 8081;\n");
      // Each file with its error codes (the unclosed brace gives two TS1005 errors).
      const places = (found: Finding[]) =>
        [...new Set(found.map((f) => `${f.where.file ?? ""} ${f.message.slice(0, 6)}`))].sort();
      const expected = [`${broken} TS1005`, `${typed} TS2322`];
      expect(places(await nativeFindings([broken, typed]))).toEqual(expected);
      expect(places(typecheck([broken, typed]))).toEqual(expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("is unusable with compiler options that TypeScript 7 dropped", async () => {
    const result = await typecheckNative([fixture("typecheck/legacy-options/broken.ts")]);
    expect(result).toEqual({
      kind: "unusable",
      why: expect.stringContaining(
        "refused the options (TS5102: Option 'baseUrl' has been removed",
      ),
    });
  }, 60_000);

  it("is unusable when a tsconfig.json it extends uses ${configDir}", async () => {
    // ${configDir} would name the folder of the generated project file, not the tsconfig's.
    const file = fixture("typecheck/config-dir/main.ts");
    expect(await typecheckNative([file])).toEqual({
      kind: "unusable",
      why: `${fixture("typecheck/config-dir/base.json")} uses \${configDir}`,
    });
    expect(typecheck([file]).map((f) => [f.where.line, f.message])).toEqual([
      [4, "TS2322: Type 'number' is not assignable to type 'string'."],
    ]);
  }, 60_000);

  it("is unusable when it does not start", async () => {
    const notAProgram = fixture("type-error.ts");
    const result = await typecheckNative([fixture("type-error.ts")], notAProgram);
    expect(result).toEqual({
      kind: "unusable",
      why: expect.stringMatching(/^the native TypeScript compiler spawn .* EACCES/),
    });
  }, 60_000);
});

describe("omens-play lint: choosing the compiler", () => {
  const inventories = [fixture("inventory.yaml")];

  it("type-checks with the native compiler and warns of nothing", async () => {
    const report = await lint({ paths: [fixture("type-error.ts")], inventories });
    expect(report.warnings).toEqual([]);
    expect(report.findings.map((f) => [f.rule, f.where.line, f.where.column])).toEqual([
      ["type-error", 4, 7],
    ]);
  }, 60_000);

  it("falls back to the compiler API with a warning, and still finds the error", async () => {
    const file = fixture("typecheck/legacy-options/broken.ts");
    const report = await lint({ paths: [file], inventories });
    expect(report.warnings).toEqual([
      expect.stringMatching(/TS5102.*; type-checking with the TypeScript compiler API instead/),
    ]);
    const types = report.findings.filter((f) => f.rule === "type-error");
    expect(types.map((f) => [f.where.file, f.where.line, f.where.column])).toEqual([[file, 1, 14]]);
  }, 60_000);

  it("does not make a tsconfig option TypeScript 6 deprecates (baseUrl) a finding of its own", async () => {
    const file = fixture("typecheck/deprecated-options/broken.ts");
    const report = await lint({ paths: [file], inventories });
    expect(report.warnings).toEqual([expect.stringMatching(/TS5102/)]);
    const types = report.findings.filter((f) => f.rule === "type-error");
    expect(types.map((f) => [f.rule, f.where.file, f.where.line, f.message])).toEqual([
      ["type-error", file, 1, "TS2322: Type 'number' is not assignable to type 'string'."],
    ]);
  }, 60_000);

  it("reports a tsconfig.json that does not parse as a finding at its place", async () => {
    const config = fixture("typecheck/broken-config/tsconfig.json");
    const report = await lint({
      paths: [fixture("typecheck/broken-config/broken.ts")],
      inventories,
    });
    const types = report.findings.filter((f) => f.rule === "type-error");
    expect(types.map((f) => [f.rule, f.where.file, f.where.line, f.message])).toEqual([
      ["type-error", config, 5, "TS1005: '}' expected."],
    ]);
  }, 60_000);
});
