import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

/** The outcome of checking a host key against a known_hosts file. */
export type HostKeyVerdict =
  { kind: "match" } | { kind: "unknown" } | { kind: "mismatch"; expected: string[]; line: number };

interface Entry {
  patterns: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  keyBase64: string;
  line: number;
  revoked: boolean;
}

/** Checks an offered host key for the names a host is known by (address, then aliases). */
export function checkHostKey(
  knownHostsPath: string,
  names: string[],
  port: number,
  offered: Buffer,
): HostKeyVerdict {
  const entries = parseKnownHosts(readKnownHosts(knownHostsPath));
  const lookups = names.map((name) => (port === 22 ? name : `[${name}]:${port}`));
  const relevant = entries.filter((entry) => lookups.some((name) => entryMatches(entry, name)));
  const offeredBase64 = offered.toString("base64");
  if (relevant.some((e) => e.revoked && e.keyBase64 === offeredBase64)) {
    return { kind: "mismatch", expected: ["(this key is marked @revoked)"], line: 0 };
  }
  if (relevant.some((e) => !e.revoked && e.keyBase64 === offeredBase64)) return { kind: "match" };
  const sameType = relevant.filter((e) => e.keyType === keyTypeOf(offered));
  if (sameType.length === 0 && relevant.length === 0) return { kind: "unknown" };
  const first = (sameType[0] ?? relevant[0]) as Entry;
  return {
    kind: "mismatch",
    expected: relevant.map((e) => fingerprint(e.keyBase64)),
    line: first.line,
  };
}

/** OpenSSH-style SHA256 fingerprint of a base64 public key blob. */
export function fingerprint(keyBase64: string): string {
  const digest = createHash("sha256").update(Buffer.from(keyBase64, "base64")).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

function readKnownHosts(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function parseKnownHosts(text: string): Entry[] {
  const entries: Entry[] = [];
  text.split("\n").forEach((raw, index) => {
    const entry = parseLine(raw.trim(), index + 1);
    if (entry) entries.push(entry);
  });
  return entries;
}

function parseLine(line: string, lineNumber: number): Entry | undefined {
  if (line === "" || line.startsWith("#")) return undefined;
  const fields = line.split(/\s+/);
  let revoked = false;
  if (fields[0]?.startsWith("@")) {
    revoked = fields[0] === "@revoked";
    if (!revoked) return undefined; // @cert-authority lines are not supported
    fields.shift();
  }
  const [hosts, keyType, keyBase64] = fields;
  if (!hosts || !keyType || !keyBase64) return undefined;
  const entry: Entry = { patterns: [], keyType, keyBase64, line: lineNumber, revoked };
  if (hosts.startsWith("|1|")) {
    const [, , salt, hash] = hosts.split("|");
    entry.hashed = {
      salt: Buffer.from(salt ?? "", "base64"),
      hash: Buffer.from(hash ?? "", "base64"),
    };
  } else {
    entry.patterns = hosts.split(",");
  }
  return entry;
}

function entryMatches(entry: Entry, name: string): boolean {
  if (entry.hashed) {
    const digest = createHmac("sha1", entry.hashed.salt).update(name).digest();
    return digest.equals(entry.hashed.hash);
  }
  let matched = false;
  for (const pattern of entry.patterns) {
    const negated = pattern.startsWith("!");
    if (globMatch(negated ? pattern.slice(1) : pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function globMatch(pattern: string, name: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${regex}$`, "i").test(name);
}

function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return "";
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString("latin1");
}
