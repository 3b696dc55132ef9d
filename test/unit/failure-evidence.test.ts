import { describe, expect, it } from "vitest";
import { failureEvidence } from "../../roles/common/gates.js";

// What a failed migration or rotation step says in its host's summary.
describe("failureEvidence", () => {
  it("keeps a one-line error as it is", () => {
    expect(failureEvidence("no certificate at /var/lib/tpm2-devid/devid.crt")).toBe(
      "no certificate at /var/lib/tpm2-devid/devid.crt",
    );
  });

  it("keeps the first line and the end of a long error, and cuts a long command line", () => {
    const command = `exit code 1 (general error): ${"x".repeat(300)}`;
    const output = Array.from({ length: 200 }, (_, i) => `journal line ${i}`).join("\n");
    const said = failureEvidence(`${command}\n${output}`);
    const lines = said.split("\n");
    expect(lines[0]).toBe(`${command.slice(0, 160)}...`);
    expect(lines[1]).toBe("...");
    expect(lines.at(-1)).toBe("journal line 199");
    expect(said).not.toContain("journal line 0\n");
  });
});
