import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { FileFact } from "../../engine/facts/reader.js";
import { authorizedKeyModule } from "../../engine/modules/authorized-key.js";
import type { PlanContext } from "../../engine/modules/types.js";

const ONE = "ssh-ed25519 AAAAKEYONE alice@lap";
const TWO = "ssh-ed25519 AAAAKEYTWO bob@desk";
const ctx = (check = false) => ({ check }) as PlanContext;
const folder: FileFact = {
  kind: "directory",
  mode: 0o700,
  owner: "demo",
  group: "demo",
  uid: 1001,
  gid: 1001,
};
const args = (extra: Record<string, unknown> = {}) =>
  authorizedKeyModule.validate({ user: "demo", key: TWO, ...extra }, {});
const keyFile = (text: string) => ({
  kind: "user" as const,
  path: "/home/demo/.ssh/authorized_keys",
  gid: "1001",
  folder,
  file: {
    fact: {
      kind: "file" as const,
      size: text.length,
      sha256: createHash("sha256").update(text).digest("hex"),
      mode: 0o600,
      owner: "demo",
      group: "demo",
      uid: 1001,
      gid: 1001,
    },
    content: Buffer.from(text),
  },
});
const written = (plan: ReturnType<typeof authorizedKeyModule.plan>) =>
  plan.ops.find((op) => op.kind === "write")?.content.toString();

describe("authorizedKey planning", () => {
  it("adds a key on its own line to a file without a final newline", () => {
    const plan = authorizedKeyModule.plan(args(), keyFile(ONE), ctx());
    expect(written(plan)).toBe(`${ONE}\n${TWO}\n`);
  });

  it("creates ~/.ssh (0700) and the file (0600), owned by the user, when both are absent", () => {
    const facts = {
      ...keyFile(""),
      folder: { kind: "absent" as const },
      file: { fact: { kind: "absent" as const }, content: undefined },
    };
    const plan = authorizedKeyModule.plan(args(), facts, ctx());
    expect(plan.ops[0]).toEqual({
      kind: "mkdir",
      path: "/home/demo/.ssh",
      mode: 0o700,
      owner: "demo",
      group: "1001",
    });
    expect(plan.ops[1]).toMatchObject({ kind: "write", mode: 0o600, owner: "demo", group: "1001" });
    expect(written(plan)).toBe(`${TWO}\n`);
  });

  it("replaces the same key with another comment in place, and is ok when it is there", () => {
    const plan = authorizedKeyModule.plan(
      args(),
      keyFile(`${ONE}\nssh-ed25519 AAAAKEYTWO old-comment\n`),
      ctx(),
    );
    expect(written(plan)).toBe(`${ONE}\n${TWO}\n`);
    expect(authorizedKeyModule.plan(args(), keyFile(`${TWO}\n${ONE}`), ctx()).status).toBe("ok");
  });

  it("removes the key with state absent, keeping the others", () => {
    const plan = authorizedKeyModule.plan(
      args({ state: "absent" }),
      keyFile(`${ONE}\n${TWO}\n`),
      ctx(),
    );
    expect(written(plan)).toBe(`${ONE}\n`);
  });

  it("fails for a missing user, but is skipped in check mode (an earlier task may create it)", () => {
    expect(authorizedKeyModule.plan(args(), { kind: "no-user" }, ctx()).status).toBe("failed");
    expect(authorizedKeyModule.plan(args(), { kind: "no-user" }, ctx(true)).status).toBe("skipped");
  });

  it("refuses a key that is not one public key line, and a relative path", () => {
    expect(() => args({ key: "not a key" })).toThrow(/"key" must be one public key line/);
    expect(() => args({ key: `${ONE}\n${TWO}` })).toThrow(/"key" must be one public key line/);
    expect(() => args({ path: "keys" })).toThrow(/"path" must be an absolute path/);
  });
});
