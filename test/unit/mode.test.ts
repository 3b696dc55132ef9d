import { describe, expect, it } from "vitest";
import { OmensError } from "../../engine/errors.js";
import { formatMode, resolveMode, validateMode } from "../../engine/mode.js";

const where = { file: "play.ts", line: 7, task: "shared dir" };

describe("modes", () => {
  it("refuses a numeric mode, saying what it would mean and what to write", () => {
    let error: unknown;
    try {
      validateMode(2755, where);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OmensError);
    const err = error as OmensError;
    expect(err.code).toBe("MODE_NUMERIC");
    expect(err.message).toContain("2755");
    expect(err.message).toContain("0o5303");
    expect(err.hint).toContain('"2755"');
    expect(err.where).toMatchObject({ file: "play.ts", line: 7 });
  });

  it("reads octal strings with special bits", () => {
    expect(resolveMode(validateMode("2755", where), 0, true)).toBe(0o2755);
    expect(formatMode(0o640)).toBe("0640");
  });

  it("applies symbolic clauses to the current mode", () => {
    expect(resolveMode(validateMode("u=rwx,g=rxs,o=rx", where), 0o644, true)).toBe(0o2755);
    expect(resolveMode(validateMode("go-w", where), 0o666, false)).toBe(0o644);
    expect(resolveMode(validateMode("a+X", where), 0o644, true)).toBe(0o755);
    expect(resolveMode(validateMode("a+X", where), 0o644, false)).toBe(0o644);
  });

  it("rejects strings that are neither octal nor symbolic", () => {
    expect(() => validateMode("rwxr-x", where)).toThrow(/neither octal digits/);
    expect(() => validateMode("9755", where)).toThrow(/neither octal digits/);
  });
});
