import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sshRoot } from "../helpers/lab.js";
import { playTasks } from "./modules-helpers.js";

const DEST = "/opt/omens-copy-release.tar.gz";
const sha = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

describe("copy with sha256 on a lab host", () => {
  const bytes = Buffer.from("release artifact v1\n");
  const src = join(mkdtempSync(join(tmpdir(), "omens-copy-")), "release.tar.gz");
  writeFileSync(src, bytes);
  afterAll(() => sshRoot("auth", `rm -f ${DEST}`));

  it("refuses a source whose hash differs: the task fails and nothing is written", async () => {
    sshRoot("auth", `rm -f ${DEST}`);
    const wanted = "f".repeat(64);
    const run = await playTasks([{ module: "copy", args: { src, dest: DEST, sha256: wanted } }]);
    expect(run.code).toBe(2);
    expect(run.results[0]?.error).toContain(`${src} has sha256 ${sha(bytes)}, expected ${wanted}`);
    expect(run.results[0]?.error).toMatch(/host auth, task "copy \/opt\/omens-copy-release/);
    expect(sshRoot("auth", `test -e ${DEST} && echo present || echo absent`)).toBe("absent\n");
  });

  it("copies a verified source, then is ok on the next run", async () => {
    const task = { module: "copy", args: { src, dest: DEST, sha256: sha(bytes), mode: "0644" } };
    const first = await playTasks([task]);
    expect(first.results[0]?.status, first.stdout).toBe("changed");
    expect(sshRoot("auth", `cat ${DEST}`)).toBe(bytes.toString());
    const second = await playTasks([task]);
    expect(second.results[0]?.status).toBe("ok");
  });
});

describe("copy with validate on a lab host", () => {
  const dest = "/etc/omens-validate.conf";
  // Accepts a file whose first line is "valid", as a daemon's config check would.
  const validate = `grep -q '^valid' %s || { echo "check: first line is $(head -n 1 %s)"; exit 1; }`;
  afterAll(() => sshRoot("auth", `rm -f ${dest}`));

  it("installs content the command accepts, and leaves the old file when it refuses", async () => {
    sshRoot("auth", `printf 'valid v1\\n' > ${dest}`);
    const good = await playTasks([
      { module: "copy", args: { dest, content: "valid v2\n", mode: "0644", validate } },
    ]);
    expect(good.results[0]?.status, good.stdout).toBe("changed");
    expect(sshRoot("auth", `cat ${dest}`)).toBe("valid v2\n");

    const bad = await playTasks([
      { module: "copy", args: { dest, content: "broken\n", mode: "0644", validate } },
    ]);
    expect(bad.code).toBe(2);
    expect(bad.results[0]?.error).toContain("check: first line is broken");
    expect(bad.results[0]?.error).toContain(
      `the validate command refused the new content; ${dest} left as it was`,
    );
    expect(sshRoot("auth", `cat ${dest}`)).toBe("valid v2\n");
    expect(sshRoot("auth", "ls -a /etc | grep -c '^.omens' || true")).toBe("0\n");
  });

  it("refuses a validate command that does not name the file as %s before any host", async () => {
    const run = await playTasks([
      { module: "copy", args: { dest, content: "x\n", validate: "true" } },
    ]);
    expect(run.code).toBe(5);
    expect(run.stderr).toContain('copy: "validate" must name the file to check as %s');
  });
});
