import { describe, expect, it } from "vitest";
import type { FileFact } from "../../engine/facts/reader.js";
import { getUrlModule } from "../../engine/modules/get-url.js";
import type { PlanContext } from "../../engine/modules/types.js";

const HASH = "a".repeat(64);
const OTHER = "b".repeat(64);
const ctx = (check = false) => ({ check }) as PlanContext;
const folder: FileFact = {
  kind: "directory",
  mode: 0o755,
  owner: "root",
  group: "root",
  uid: 0,
  gid: 0,
};
const file = (sha256: string, mode = 0o644): FileFact => ({
  kind: "file",
  size: 10,
  sha256,
  mode,
  owner: "root",
  group: "root",
  uid: 0,
  gid: 0,
});
const args = (extra: Record<string, unknown> = {}) =>
  getUrlModule.validate(
    {
      url: "https://user:pw@releases.example/a.tar.gz?token=x",
      dest: "/opt/a.tar.gz",
      sha256: HASH,
      ...extra,
    },
    {},
  );

describe("getUrl planning", () => {
  it("downloads when dest is absent, through curl reading its settings from stdin", () => {
    const plan = getUrlModule.plan(args(), { dest: { kind: "absent" }, folder }, ctx());
    expect(plan.status).toBe("changed");
    const op = plan.ops[0];
    expect(op?.kind).toBe("exec");
    if (op?.kind !== "exec") return;
    expect(op.command).toContain("curl --config -");
    expect(op.command).not.toContain("token=x");
    expect(String(op.stdin)).toContain('url = "https://user:pw@releases.example/a.tar.gz?token=x"');
    expect(op.display).toBe(
      "download https://releases.example/a.tar.gz?... -> /opt/a.tar.gz (sha256 checked, atomic)",
    );
  });

  it("downloads again when dest has another hash, and says which", () => {
    const plan = getUrlModule.plan(args(), { dest: file(OTHER), folder }, ctx(true));
    expect(plan.status).toBe("changed");
    expect(plan.reason).toContain(`has sha256 ${OTHER}, not ${HASH}`);
    expect(plan.reason).toMatch(/^would download/);
    expect(plan.diff?.[0]?.attributes).toEqual([
      "sha256 bbbbbbbbbbbb... -> sha256 aaaaaaaaaaaa...",
    ]);
  });

  it("is ok without any download when dest already has the hash and attributes", () => {
    const plan = getUrlModule.plan(args({ mode: "0644" }), { dest: file(HASH), folder }, ctx());
    expect(plan).toMatchObject({ status: "ok", ops: [] });
  });

  it("only fixes the mode when the hash matches but the mode differs", () => {
    const plan = getUrlModule.plan(args({ mode: "0600" }), { dest: file(HASH), folder }, ctx());
    expect(plan.status).toBe("changed");
    expect(plan.ops).toEqual([{ kind: "chmod", path: "/opt/a.tar.gz", mode: 0o600 }]);
  });

  it("fails when the destination folder is missing", () => {
    const plan = getUrlModule.plan(
      args(),
      { dest: { kind: "absent" }, folder: { kind: "absent" } },
      ctx(),
    );
    expect(plan.status).toBe("failed");
    expect(plan.reason).toContain("folder /opt does not exist");
  });

  it("refuses a missing or malformed sha256, a relative dest and a non-http URL", () => {
    expect(() => getUrlModule.validate({ url: "http://x/a", dest: "/a" }, {})).toThrow(
      /"sha256" must be a non-empty string/,
    );
    expect(() => args({ sha256: "abc" })).toThrow(/"sha256" must be 64 hex digits, got "abc"/);
    expect(() => args({ dest: "a.tar.gz" })).toThrow(/"dest" must be an absolute file path/);
    expect(() => args({ url: "ftp://x/a" })).toThrow(/only http and https URLs/);
    expect(() => args({ mode: 644 })).toThrow(/modes must be strings/);
  });

  it("reports a checksum mismatch with both hashes and a curl failure with its meaning", () => {
    const valid = args();
    const plan = getUrlModule.plan(valid, { dest: { kind: "absent" }, folder }, ctx());
    const finish = getUrlModule.finish;
    if (!finish) throw new Error("getUrl has no finish step");
    expect(() => finish(valid, plan, { rc: 65, stdout: `sha256-mismatch ${OTHER}\n` })).toThrow(
      `has sha256 ${OTHER}, expected ${HASH}`,
    );
    expect(() => finish(valid, plan, { rc: 7, stdout: "", stderr: "Failed to connect" })).toThrow(
      /exit code 7 \(could not connect/,
    );
  });
});
