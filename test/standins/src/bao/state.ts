// The server's persistent state under the raft path: a seal section (the barrier key wrapped by
// each unseal key, AES-256-GCM) and the barrier-encrypted data (tokens, auth mounts, policies).
// Nothing readable survives a restart until an unseal key opens the barrier again.
import { createCipheriv, createDecipheriv, createHash, randomBytes, randomUUID } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";

export interface TokenEntry {
  policies: string[];
  displayName: string;
  created: number;
  /** Epoch ms; 0 = never (the root token). */
  expires: number;
  ttl: number;
  accessor: string;
  meta: Record<string, string>;
}

export interface JwtMount {
  config?: Record<string, unknown>;
  roles: Record<string, Record<string, unknown>>;
}

export interface AuthMount {
  type: string;
  description: string;
  accessor: string;
  uuid: string;
  jwt?: JwtMount;
}

/** What the barrier protects. */
export interface Data {
  tokens: Record<string, TokenEntry>;
  auth: Record<string, AuthMount>;
  policies: Record<string, string>;
}

interface Sealed {
  iv: string;
  tag: string;
  ct: string;
}

interface File {
  version: 1;
  clusterId: string;
  shares: number;
  threshold: number;
  /** The barrier key, wrapped once per unseal key (threshold 1). */
  wraps: Sealed[];
  barrier: Sealed;
}

function seal(key: Buffer, plain: Buffer): Sealed {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, iv);
  const ct = Buffer.concat([c.update(plain), c.final()]);
  return {
    iv: iv.toString("base64"),
    tag: c.getAuthTag().toString("base64"),
    ct: ct.toString("base64"),
  };
}

function open(key: Buffer, s: Sealed): Buffer | undefined {
  try {
    const d = createDecipheriv("aes-256-gcm", key, Buffer.from(s.iv, "base64"));
    d.setAuthTag(Buffer.from(s.tag, "base64"));
    return Buffer.concat([d.update(Buffer.from(s.ct, "base64")), d.final()]);
  } catch {
    return undefined;
  }
}

/** The wrapping key of an unseal key: never stored, only derived. */
function kek(unsealKey: Buffer): Buffer {
  return createHash("sha256").update("omens-standin-unseal\0").update(unsealKey).digest();
}

export function tokenId(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

export class Store {
  private file?: File;
  private barrierKey?: Buffer;
  data?: Data;
  readonly path: string;

  constructor(dir: string) {
    this.path = join(dir, "standin-bao-state.json");
    try {
      this.file = JSON.parse(readFileSync(this.path, "utf8")) as File;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }

  get initialized() {
    return this.file !== undefined;
  }
  get sealed() {
    return this.data === undefined;
  }
  get shares() {
    return this.file?.shares ?? 0;
  }
  get threshold() {
    return this.file?.threshold ?? 0;
  }
  get clusterId() {
    return this.file?.clusterId ?? "";
  }

  /** Initialises once: returns the unseal keys and the root token. */
  init(shares: number, threshold: number): { keys: Buffer[]; rootToken: string } {
    const barrierKey = randomBytes(32);
    const keys = Array.from({ length: shares }, () => randomBytes(32));
    const rootToken = `s.${randomBytes(18).toString("base64url")}`;
    const data: Data = {
      tokens: {
        [tokenId(rootToken)]: {
          policies: ["root"],
          displayName: "root",
          created: Date.now(),
          expires: 0,
          ttl: 0,
          accessor: randomBytes(12).toString("base64url"),
          meta: {},
        },
      },
      auth: {
        "token/": {
          type: "token",
          description: "token based credentials",
          accessor: `auth_token_${randomBytes(4).toString("hex")}`,
          uuid: randomUUID(),
        },
      },
      policies: {},
    };
    this.file = {
      version: 1,
      clusterId: randomUUID(),
      shares,
      threshold,
      wraps: keys.map((k) => seal(kek(k), barrierKey)),
      barrier: seal(barrierKey, Buffer.from(JSON.stringify(data))),
    };
    this.writeFile();
    return { keys, rootToken };
  }

  /** Opens the barrier with one unseal key; false when the key is not one of them. */
  unseal(key: Buffer): boolean {
    if (!this.file) return false;
    for (const w of this.file.wraps) {
      const barrierKey = open(kek(key), w);
      if (!barrierKey) continue;
      const plain = open(barrierKey, this.file.barrier);
      if (!plain)
        throw new Error("barrier data does not decrypt with the barrier key: corrupted state");
      this.barrierKey = barrierKey;
      this.data = JSON.parse(plain.toString()) as Data;
      return true;
    }
    return false;
  }

  seal() {
    this.data = undefined;
    this.barrierKey = undefined;
  }

  /** Persists the data (after a change) atomically. */
  save() {
    if (!this.file || !this.data || !this.barrierKey) throw new Error("cannot save a sealed store");
    this.file.barrier = seal(this.barrierKey, Buffer.from(JSON.stringify(this.data)));
    this.writeFile();
  }

  private writeFile() {
    const tmp = `${this.path}.tmp-${process.pid}`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(this.file));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
  }
}
