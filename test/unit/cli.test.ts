import { describe, expect, it } from "vitest";
import { main } from "../../engine/cli.js";

/** A terminal that keeps what the CLI prints. */
function recordingTerminal() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    terminal: {
      out: (l: string) => void out.push(l),
      err: (l: string) => void err.push(l),
      color: false,
    },
    out,
    err,
  };
}

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
