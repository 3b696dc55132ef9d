import { describe, expect, it } from "vitest";
import { CaseFiles, runCase, statuses } from "../helpers/cases.js";

// B02: text added to a file whose last byte is not a newline starts on a line of its own, and
// an empty file gets no leading blank line; lineinfile and blockinfile follow the same rule.
const files = new CaseFiles("ca", "/srv/omens-cases/b02");
const run = () => runCase("test/fixtures/cases/b02-final-newline.ts", { OMENS_B02_DIR: files.dir });
const one = "ssh-ed25519 AAAAKEYONE alice@lap";
const two = "ssh-ed25519 AAAAKEYTWO bob@desk";

describe("B02: adding to a file without a final newline", () => {
  it("never glues the new text onto the last line, and converges", async () => {
    files.reset({ keys: one, "keys-empty": "", block: one, "block-empty": "" });

    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    expect(Object.values(statuses(first, "ca"))).toEqual([
      "changed",
      "changed",
      "changed",
      "changed",
    ]);
    expect(files.read("keys")).toBe(`${one}\n${two}\n`);
    expect(files.read("keys-empty")).toBe(`${two}\n`);
    expect(files.read("block")).toBe(`${one}\n# BEGIN omens keys\n${two}\n# END omens keys\n`);
    expect(files.read("block-empty")).toBe(`# BEGIN omens keys\n${two}\n# END omens keys\n`);

    const second = await run();
    expect(Object.values(statuses(second, "ca"))).toEqual(["ok", "ok", "ok", "ok"]);
  });
});
