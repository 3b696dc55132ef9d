import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkHostKey } from "../../engine/connection/known-hosts.js";

const blob = (type: string, body: string) => {
  const name = Buffer.from(type);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(name.length);
  return Buffer.concat([length, name, Buffer.from(body)]);
};
const key = blob("ssh-ed25519", "host-key-one");
const other = blob("ssh-ed25519", "host-key-two");

function knownHosts(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "omens-kh-")), "known_hosts");
  writeFileSync(file, text);
  return file;
}

describe("known_hosts lookup", () => {
  it("finds a host on a non-standard port, written as [address]:port", () => {
    const file = knownHosts(`[127.0.0.1]:2222 ssh-ed25519 ${key.toString("base64")}\n`);
    expect(checkHostKey(file, ["127.0.0.1"], 2222, key)).toEqual({ kind: "match" });
  });

  it("does not take the brackets as a character class", () => {
    const file = knownHosts(`[127.0.0.1]:2222 ssh-ed25519 ${key.toString("base64")}\n`);
    expect(checkHostKey(file, ["1"], 2222, key)).toEqual({ kind: "unknown" });
  });

  it("reports a changed key on a non-standard port as a mismatch", () => {
    const file = knownHosts(`[127.0.0.1]:2222 ssh-ed25519 ${key.toString("base64")}\n`);
    expect(checkHostKey(file, ["127.0.0.1"], 2222, other)).toMatchObject({ kind: "mismatch" });
  });
});
