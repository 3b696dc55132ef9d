// The server's datastore: one JSON document at the sqlite connection_string path, rewritten
// atomically (temporary file + fsync + rename) after every change. It holds join tokens,
// attested agents, registration entries and the trust bundle (CA certificates, JWT public keys).
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../common/files.js";
import type { AgentRecord, EntryRecord } from "../spire/shared.js";

export interface JoinToken {
  value: string;
  /** Unix seconds. */
  expiresAt: number;
}

export interface JwtKeyRecord {
  kid: string;
  /** SPKI PEM. */
  publicPem: string;
  /** Unix seconds. */
  notAfter: number;
}

export interface Data {
  format: "omens-spire-standin-datastore/1";
  tokens: JoinToken[];
  agents: AgentRecord[];
  entries: EntryRecord[];
  bundle: { sequence: number; x509: string[]; jwt: JwtKeyRecord[] };
}

/** The file behind a sqlite3 connection_string ("path", "file:path?opts"). */
export function datastorePath(connectionString: string): string {
  return connectionString.replace(/^file:/, "").replace(/\?.*$/, "");
}

export class Datastore {
  data: Data;

  constructor(readonly path: string) {
    this.data = existsSync(path) ? Datastore.read(path) : Datastore.empty();
  }

  private static empty(): Data {
    return {
      format: "omens-spire-standin-datastore/1",
      tokens: [],
      agents: [],
      entries: [],
      bundle: { sequence: 0, x509: [], jwt: [] },
    };
  }

  private static read(path: string): Data {
    let data: Data;
    try {
      data = JSON.parse(readFileSync(path, "utf8")) as Data;
    } catch (e) {
      throw new Error(`datastore ${path} is not readable: ${(e as Error).message}`);
    }
    if (data.format !== "omens-spire-standin-datastore/1")
      throw new Error(`datastore ${path}: unknown format (not written by this server)`);
    return data;
  }

  /** Applies `change` and writes the datastore; the change's result is returned. */
  update<T>(change: (d: Data) => T): T {
    const result = change(this.data);
    writeFileAtomic(this.path, JSON.stringify(this.data, null, 2) + "\n");
    return result;
  }

  /** Checks the folder is writable by writing the current state. */
  flush(): void {
    this.update(() => undefined);
  }
}
