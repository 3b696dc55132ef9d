import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { editBlock, editLine, type Anchor } from "../../engine/modules/line-edit.js";

const eof: Anchor = { kind: "eof" };

describe("editLine", () => {
  it("replaces the last line matching regexp in place, ignoring the insertafter anchor", () => {
    const spec = {
      state: "present" as const,
      line: "port=8080",
      regexp: /^port=/,
      anchor: { kind: "after" as const, pattern: /^\[core\]/ },
    };
    const once = editLine("[core]\nname=demo\n[net]\nport=80\n", spec);
    expect(once).toBe("[core]\nname=demo\n[net]\nport=8080\n");
    expect(editLine(once, spec)).toBe(once);
  });

  it("inserts after the anchor when nothing matches regexp", () => {
    const spec = {
      state: "present" as const,
      line: "port=8080",
      regexp: /^port=/,
      anchor: { kind: "after" as const, pattern: /^\[core\]/ },
    };
    expect(editLine("[core]\nname=demo\n[net]\n", spec)).toBe(
      "[core]\nport=8080\nname=demo\n[net]\n",
    );
  });

  it("starts a new line when the file lacks a final newline, and writes no blank line into an empty file", () => {
    const spec = {
      state: "present" as const,
      line: "ssh-ed25519 AAAAKEYTWO bob@desk",
      anchor: eof,
    };
    expect(editLine("ssh-ed25519 AAAAKEYONE alice@lap", spec)).toBe(
      "ssh-ed25519 AAAAKEYONE alice@lap\nssh-ed25519 AAAAKEYTWO bob@desk\n",
    );
    expect(editLine("", spec)).toBe("ssh-ed25519 AAAAKEYTWO bob@desk\n");
  });

  it("leaves the bytes alone when the line is already there, even without a final newline", () => {
    expect(editLine("a\nb", { state: "present", line: "b", anchor: eof })).toBe("a\nb");
  });

  it("removes every matching line with state absent", () => {
    expect(editLine("a\nx=1\nb\nx=2\n", { state: "absent", regexp: /^x=/ })).toBe("a\nb\n");
  });

  it("converges: applying an edit to its own result changes nothing (random files and lines)", () => {
    const lineArb = fc.string({ maxLength: 12 }).filter((s) => !s.includes("\n"));
    fc.assert(
      fc.property(
        fc.array(lineArb, { maxLength: 8 }),
        fc.boolean(),
        lineArb,
        fc.boolean(),
        (lines, finalNewline, line, useRegexp) => {
          const text = lines.join("\n") + (finalNewline && lines.length > 0 ? "\n" : "");
          const regexp =
            useRegexp && line.length > 0
              ? new RegExp(`^${line[0]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`)
              : undefined;
          const spec = {
            state: "present" as const,
            line,
            anchor: eof,
            ...(regexp ? { regexp } : {}),
          };
          const once = editLine(text, spec);
          expect(editLine(once, spec)).toBe(once);
        },
      ),
    );
  });
});

describe("editBlock", () => {
  const spec = {
    state: "present" as const,
    block: "a=1\nb=2\n",
    begin: "# BEGIN x",
    end: "# END x",
    anchor: eof,
  };

  it("adds the block on a new line after a last line without newline", () => {
    expect(editBlock("keep", spec)).toBe("keep\n# BEGIN x\na=1\nb=2\n# END x\n");
  });

  it("replaces the block between its markers and is then stable", () => {
    const once = editBlock("top\n# BEGIN x\nold\n# END x\nbottom\n", spec);
    expect(once).toBe("top\n# BEGIN x\na=1\nb=2\n# END x\nbottom\n");
    expect(editBlock(once, spec)).toBe(once);
  });

  it("removes the block with state absent", () => {
    expect(editBlock("top\n# BEGIN x\nold\n# END x\n", { ...spec, state: "absent" })).toBe("top\n");
  });

  it("converges for random files and blocks", () => {
    const lineArb = fc
      .string({ maxLength: 10 })
      .filter((s) => !s.includes("\n") && !s.startsWith("# "));
    fc.assert(
      fc.property(
        fc.array(lineArb, { maxLength: 6 }),
        fc.array(lineArb, { maxLength: 4 }),
        (lines, block) => {
          const s = { ...spec, block: block.join("\n") };
          const once = editBlock(lines.join("\n"), s);
          expect(editBlock(once, s)).toBe(once);
        },
      ),
    );
  });
});
