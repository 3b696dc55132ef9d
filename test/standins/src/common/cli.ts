import { existsSync, unlinkSync } from "node:fs";
// Go-style flag parsing (-flag value, -flag=value, --flag) and small process helpers.
import http from "node:http";

/** Parsed flags: every flag keeps all its values, in order (for repeated -selector). */
export interface Flags {
  values: Map<string, string[]>;
  positional: string[];
}

/** Parses Go `flag` style arguments; `bools` names the flags that take no value. */
export function parseFlags(argv: string[], bools: string[] = []): Flags {
  const values = new Map<string, string[]>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--?([A-Za-z0-9_.-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) {
      positional.push(arg);
      continue;
    }
    const name = m[1]!;
    let value = m[2];
    if (value === undefined) value = bools.includes(name) ? "true" : argv[++i];
    if (value === undefined) fail(`flag needs an argument: -${name}`, 2);
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  return { values, positional };
}

/** The last value of a flag, or the fallback. */
export function flag(f: Flags, name: string, fallback?: string): string | undefined {
  return f.values.get(name)?.at(-1) ?? fallback;
}

/** A flag that must be present. */
export function need(f: Flags, name: string): string {
  const v = flag(f, name);
  if (v === undefined) fail(`missing required flag -${name}`, 1);
  return v;
}

/** Every value of a repeated flag. */
export function all(f: Flags, name: string): string[] {
  return f.values.get(name) ?? [];
}

/** Prints to stderr and exits with `code`. */
export function fail(message: string, code = 1): never {
  process.stderr.write(message.endsWith("\n") ? message : message + "\n");
  process.exit(code);
}

/** A timestamped log line on stderr, like the real daemons' text logs. */
export function log(level: string, msg: string, fields: Record<string, unknown> = {}) {
  const extra = Object.entries(fields)
    .map(([k, v]) => ` ${k}=${JSON.stringify(v)}`)
    .join("");
  process.stderr.write(`time="${new Date().toISOString()}" level=${level} msg="${msg}"${extra}\n`);
}

/** Calls a JSON endpoint on an HTTP server listening on a unix socket. */
export function callSocket(
  socketPath: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; data: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, path, method: body === undefined ? "GET" : "POST", headers },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => {
          try {
            resolve({ status: res.statusCode ?? 0, data: JSON.parse(text || "{}") });
          } catch {
            reject(new Error(`bad reply from ${socketPath}: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Reads a JSON request body. */
export function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let text = "";
    req.on("data", (d: Buffer) => (text += d.toString()));
    req.on("end", () => {
      try {
        resolve(text ? (JSON.parse(text) as Record<string, unknown>) : {});
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** Sends a JSON reply. */
export function reply(res: http.ServerResponse, status: number, data: unknown) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(data));
}

/** An error that an API handler turns into a reply with this HTTP status. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Parses Go `flag` arguments accepting only `known` flags (and `bools`, which take no value),
 * failing like Go's flag package on anything else: "flag provided but not defined: -x", exit 1.
 */
export function parseKnownFlags(argv: string[], known: string[], bools: string[] = []): Flags {
  const f = parseFlags(argv, bools);
  for (const name of f.values.keys())
    if (!known.includes(name) && !bools.includes(name))
      fail(
        `flag provided but not defined: -${name}\nknown flags: ${[...known, ...bools].map((k) => `-${k}`).join(" ")}`,
        1,
      );
  return f;
}

/** Closes listeners without waiting on open keep-alive connections, then removes the socket. */
export async function closeServers(
  servers: { close(done: () => void): unknown; closeAllConnections(): void }[],
  socketPath: string,
): Promise<void> {
  await Promise.all(
    servers.map(
      (srv) =>
        new Promise<void>((done) => {
          srv.close(() => done());
          srv.closeAllConnections();
        }),
    ),
  );
  if (existsSync(socketPath)) unlinkSync(socketPath);
}
