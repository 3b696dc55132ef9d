import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { FileFact, HostReader } from "../../engine/facts/reader.js";
import { copyModule } from "../../engine/modules/copy.js";
import type { PlanContext } from "../../engine/modules/types.js";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
const ctx = { check: false, diff: false, baseDir: "/nonexistent", where: {} } as PlanContext;
const readerWith = (fact: FileFact) =>
  ({
    stat: (paths: string[]) => Promise.resolve(new Map(paths.map((p) => [p, fact]))),
  }) as unknown as HostReader;
const file = (text: string): FileFact => ({
  kind: "file",
  size: text.length,
  sha256: sha(text),
  mode: 0o644,
  owner: "root",
  group: "root",
  uid: 0,
  gid: 0,
});

function artifact(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "omens-copy-")), "release.tar.gz");
  writeFileSync(path, text);
  return path;
}

async function planCopy(raw: Record<string, unknown>, fact: FileFact) {
  const args = copyModule.validate(raw, {});
  return copyModule.plan(args, await copyModule.facts(args, readerWith(fact), ctx), ctx);
}

describe("copy with sha256", () => {
  it("writes a source file whose hash matches to an absent dest", async () => {
    const src = artifact("release-1\n");
    const plan = await planCopy(
      { dest: "/opt/r.tgz", src, sha256: sha("release-1\n") },
      { kind: "absent" },
    );
    expect(plan.status).toBe("changed");
    expect(plan.ops[0]).toMatchObject({ kind: "write", path: "/opt/r.tgz" });
  });

  it("replaces a dest with other contents", async () => {
    const src = artifact("release-2\n");
    const plan = await planCopy(
      { dest: "/opt/r.tgz", src, sha256: sha("release-2\n") },
      file("release-1\n"),
    );
    expect(plan).toMatchObject({ status: "changed", reason: "content differs" });
  });

  it("is ok when the dest already holds the verified source", async () => {
    const plan = await planCopy(
      { dest: "/opt/r.tgz", content: "v=1\n", sha256: `sha256:${sha("v=1\n").toUpperCase()}` },
      file("v=1\n"),
    );
    expect(plan).toMatchObject({ status: "ok", ops: [] });
  });

  it("refuses a source file with another hash, naming the file and both hashes, before reading the host", async () => {
    const src = artifact("tampered\n");
    const wanted = sha("release-1\n");
    const args = copyModule.validate({ dest: "/opt/r.tgz", src, sha256: wanted }, {});
    const unusedReader = {} as HostReader;
    await expect(copyModule.facts(args, unusedReader, ctx)).rejects.toThrow(
      `copy: ${src} has sha256 ${sha("tampered\n")}, expected ${wanted}; nothing was written`,
    );
  });

  it("refuses literal content with another hash, and a malformed hash, at load time", () => {
    expect(() => copyModule.validate({ dest: "/a", content: "x", sha256: sha("y") }, {})).toThrow(
      `copy: content has sha256 ${sha("x")}, expected ${sha("y")}`,
    );
    expect(() => copyModule.validate({ dest: "/a", content: "x", sha256: "xyz" }, {})).toThrow(
      /"sha256" must be 64 hex digits/,
    );
  });
});
