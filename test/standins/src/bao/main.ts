// bao stand-in: `bao server -config=F` plus the CLI subset the roles call (see README.md).
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { fail, parseFlags, type Flags } from "../common/cli.js";
import { ConfigError } from "../common/hcl.js";
import { loadServerConfig } from "./config.js";
import { BaoServer, VERSION } from "./server.js";

function env(name: string): string | undefined {
  return process.env[`BAO_${name}`] ?? process.env[`VAULT_${name}`];
}

function parse(argv: string[], known: string[], bools: string[] = []): Flags {
  const f = parseFlags(argv, bools);
  for (const name of f.values.keys())
    if (!known.includes(name) && !bools.includes(name))
      fail(`flag provided but not defined: -${name}`, 1);
  const format = f.values.get("format")?.at(-1);
  if (format !== undefined && !["json", "table"].includes(format))
    fail(`Invalid output format: ${format}`, 1);
  return f;
}

const json = (f: Flags) => (f.values.get("format")?.at(-1) ?? env("FORMAT")) === "json";

interface Response {
  status: number;
  data: Record<string, unknown>;
  url: string;
  method: string;
}

/** One API call to BAO_ADDR, verifying TLS against BAO_CACERT. */
function api(method: string, path: string, body?: unknown): Promise<Response> {
  const addr = env("ADDR") ?? "https://127.0.0.1:8200";
  const url = new URL(`/v1/${path}`, addr);
  const caFile = env("CACERT");
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile, "utf8");
    } catch (e) {
      fail(`Error loading CA File: ${(e as Error).message}`, 1);
    }
  }
  const token = env("TOKEN");
  const lib = url.protocol === "http:" ? http : https;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      url,
      {
        method,
        ...(url.protocol === "https:"
          ? {
              ca,
              ...(isIP(url.hostname) ? {} : { servername: url.hostname }),
              rejectUnauthorized: !["1", "true"].includes(env("SKIP_VERIFY") ?? ""),
            }
          : {}),
        headers: {
          "Content-Type": "application/json",
          ...(token ? { "X-Vault-Token": token } : {}),
        },
        timeout: 60_000,
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => {
          let data: Record<string, unknown> = {};
          try {
            if (text.trim()) data = JSON.parse(text) as Record<string, unknown>;
          } catch {
            data = { errors: [text.slice(0, 300)] };
          }
          resolve({ status: res.statusCode ?? 0, data, url: url.href, method });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) =>
      reject(new Error(`${method === "GET" ? "Get" : "Put"} "${url.href}": ${e.message}`)),
    );
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function call(what: string, method: string, path: string, body?: unknown): Promise<Response> {
  let r: Response;
  try {
    r = await api(method, path, body);
  } catch (e) {
    fail(`${what}: ${(e as Error).message}`, 2);
  }
  if (r.status >= 400 && r.status !== 404) apiFail(what, r);
  return r;
}

function apiFail(what: string, r: Response): never {
  const errors = ((r.data.errors as string[] | undefined) ?? []).map((e) => `* ${e}`).join("\n");
  fail(
    `${what}: Error making API request.\n\nURL: ${r.method} ${r.url}\nCode: ${r.status}. Errors:\n\n${errors}\n`,
    2,
  );
}

function table(rows: [string, unknown][]) {
  const w = Math.max(3, ...rows.map(([k]) => k.length));
  const fmt = (v: unknown) =>
    Array.isArray(v)
      ? `[${v.join(" ")}]`
      : v === null || v === undefined
        ? "n/a"
        : typeof v === "object"
          ? JSON.stringify(v)
          : String(v);
  const lines = [
    `${"Key".padEnd(w)}    Value`,
    `${"---".padEnd(w)}    -----`,
    ...rows.map(([k, v]) => `${k.padEnd(w)}    ${fmt(v)}`),
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

function printJson(v: unknown) {
  process.stdout.write(JSON.stringify(v, null, 2) + "\n");
}

function statusRows(s: Record<string, unknown>): [string, unknown][] {
  return [
    ["Seal Type", s.type],
    ["Initialized", s.initialized],
    ["Sealed", s.sealed],
    ["Total Shares", s.n],
    ["Threshold", s.t],
    ["Version", s.version],
    ["Build Date", s.build_date],
    ["Storage Type", s.storage_type],
    ...(s.sealed
      ? []
      : ([
          ["Cluster Name", s.cluster_name],
          ["Cluster ID", s.cluster_id],
          ["HA Enabled", false],
        ] as [string, unknown][])),
  ];
}

// ------------------------------------------------------------------ commands
async function status(argv: string[]) {
  const f = parse(argv, ["format"]);
  const r = await call("Error checking seal status", "GET", "sys/seal-status");
  const s: Record<string, unknown> = { ...r.data, ha_enabled: false };
  if (json(f)) printJson(s);
  else table(statusRows(s));
  if (s.sealed) process.exit(2);
}

async function operatorInit(argv: string[]) {
  const f = parse(argv, ["key-shares", "key-threshold", "format", "n", "t"]);
  const shares = Number(f.values.get("key-shares")?.at(-1) ?? f.values.get("n")?.at(-1) ?? 5);
  const threshold = Number(f.values.get("key-threshold")?.at(-1) ?? f.values.get("t")?.at(-1) ?? 3);
  const r = await call("Error initializing", "PUT", "sys/init", {
    secret_shares: shares,
    secret_threshold: threshold,
  });
  const keys = r.data.keys as string[];
  const b64 = r.data.keys_base64 as string[];
  if (json(f)) {
    printJson({
      unseal_keys_b64: b64,
      unseal_keys_hex: keys,
      unseal_shares: shares,
      unseal_threshold: threshold,
      recovery_keys_b64: [],
      recovery_keys_hex: [],
      recovery_keys_shares: 0,
      recovery_keys_threshold: 0,
      root_token: r.data.root_token,
    });
    return;
  }
  const lines = b64.map((k, i) => `Unseal Key ${i + 1}: ${k}`);
  process.stdout.write(
    `${lines.join("\n")}\n\nInitial Root Token: ${String(r.data.root_token)}\n\nVault initialized with ${shares} key shares and a key threshold of ${threshold}.\n`,
  );
}

async function operatorUnseal(argv: string[]) {
  const f = parse(argv, ["format"], ["reset"]);
  const key = f.positional[0];
  if (!key && !f.values.has("reset"))
    fail("Error unsealing: no unseal key given (and no terminal to ask)", 1);
  const r = await call(
    "Error unsealing",
    "PUT",
    "sys/unseal",
    f.values.has("reset") ? { reset: true } : { key },
  );
  if (json(f)) printJson(r.data);
  else table(statusRows(r.data));
}

async function operatorSeal(argv: string[]) {
  parse(argv, []);
  await call("Error sealing", "PUT", "sys/seal");
  process.stdout.write("Success! Vault is sealed.\n");
}

async function authEnable(argv: string[]) {
  const f = parse(argv, ["path", "description"]);
  const type = f.positional[0];
  if (!type || f.positional.length !== 1) fail("Not enough arguments (expected 1, got 0)", 1);
  const path = (f.values.get("path")?.at(-1) ?? type).replace(/\/$/, "");
  await call(`Error enabling ${type} auth`, "POST", `sys/auth/${path}`, {
    type,
    description: f.values.get("description")?.at(-1) ?? "",
  });
  process.stdout.write(`Success! Enabled ${type} auth method at: ${path}/\n`);
}

async function authList(argv: string[]) {
  const f = parse(argv, ["format"], ["detailed"]);
  const r = await call("Error listing enabled authentications", "GET", "sys/auth");
  const mounts = (r.data.data ?? {}) as Record<
    string,
    { type: string; accessor: string; description: string }
  >;
  if (json(f)) return printJson(mounts);
  const rows = Object.entries(mounts).sort(([a], [b]) => a.localeCompare(b));
  process.stdout.write(
    [
      "Path      Type     Accessor               Description",
      "----      ----     --------               -----------",
    ]
      .concat(
        rows.map(
          ([p, m]) =>
            `${p.padEnd(10)}${m.type.padEnd(9)}${m.accessor.padEnd(23)}${m.description || "n/a"}`,
        ),
      )
      .join("\n") + "\n",
  );
}

/** k=v arguments; `@file` reads a file; repeated keys become a list. */
function fields(args: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of args) {
    const i = a.indexOf("=");
    if (i <= 0)
      fail(`Failed to parse K=V data: invalid key/value pair "${a}": format must be key=value`, 1);
    const k = a.slice(0, i);
    let v: string = a.slice(i + 1);
    if (v.startsWith("@")) {
      try {
        v = readFileSync(v.slice(1), "utf8");
      } catch (e) {
        fail(`Failed to parse K=V data: error reading file: ${(e as Error).message}`, 1);
      }
    }
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function printSecret(f: Flags, data: Record<string, unknown>) {
  if (json(f)) return printJson(data);
  const warnings = data.warnings as string[] | null;
  if (warnings?.length)
    process.stderr.write(
      `WARNING! The following warnings were returned from Vault:\n\n${warnings.map((w) => `  * ${w}`).join("\n")}\n\n`,
    );
  const auth = data.auth as Record<string, unknown> | null;
  if (auth)
    return table([
      ["token", auth.client_token],
      ["token_accessor", auth.accessor],
      ["token_duration", `${String(auth.lease_duration)}s`],
      ["token_renewable", auth.renewable],
      ["token_policies", auth.token_policies],
      ["identity_policies", []],
      ["policies", auth.policies],
      ...Object.entries((auth.metadata ?? {}) as Record<string, unknown>).map(
        ([k, v]): [string, unknown] => [`token_meta_${k}`, v],
      ),
    ]);
  const d = (data.data ?? {}) as Record<string, unknown>;
  table(Object.entries(d).sort(([a], [b]) => a.localeCompare(b)));
}

async function write(argv: string[]) {
  const f = parse(argv, ["format", "field"], ["force", "f"]);
  const [path, ...rest] = f.positional;
  if (!path) fail("Not enough arguments (expected 1, got 0)", 1);
  const body = fields(rest);
  const r = await call(`Error writing data to ${path}`, "PUT", path, body);
  if (r.status === 404) apiFail(`Error writing data to ${path}`, r);
  if (r.status === 204 || !Object.keys(r.data).length) {
    process.stdout.write(`Success! Data written to: ${path}\n`);
    return;
  }
  printSecret(f, r.data);
}

async function read(argv: string[]) {
  const f = parse(argv, ["format", "field"]);
  const path = f.positional[0];
  if (!path || f.positional.length !== 1) fail("Not enough arguments (expected 1, got 0)", 1);
  const r = await call(`Error reading ${path}`, "GET", path);
  if (r.status === 404) fail(`No value found at ${path}`, 2);
  const field = f.values.get("field")?.at(-1);
  if (field) {
    const v = ((r.data.data ?? {}) as Record<string, unknown>)[field];
    if (v === undefined) fail(`Field "${field}" not present in secret`, 1);
    process.stdout.write(typeof v === "string" ? v + "\n" : JSON.stringify(v) + "\n");
    return;
  }
  printSecret(f, r.data);
}

async function policyWrite(argv: string[]) {
  parse(argv, []);
  const [name, file] = parseFlags(argv).positional;
  if (!name || !file) fail("Not enough arguments (expected 2)", 1);
  let text: string;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    fail(`Error opening policy file: ${(e as Error).message}`, 1);
  }
  await call("Error uploading policy", "PUT", `sys/policies/acl/${name}`, { policy: text });
  process.stdout.write(`Success! Uploaded policy: ${name}\n`);
}

async function policyRead(argv: string[]) {
  parse(argv, ["format"]);
  const name = parseFlags(argv).positional[0];
  if (!name) fail("Not enough arguments (expected 1, got 0)", 1);
  const r = await call(`Error reading policy named ${name}`, "GET", `sys/policies/acl/${name}`);
  if (r.status === 404) fail(`No policy named: ${name}`, 2);
  process.stdout.write(
    String((r.data.data as Record<string, unknown>).policy).replace(/\n*$/, "\n"),
  );
}

async function tokenLookup(argv: string[]) {
  const f = parse(argv, ["format"]);
  const r = await call("Error looking up token", "GET", "auth/token/lookup-self");
  printSecret(f, r.data);
}

async function server(argv: string[]) {
  const f = parse(argv, ["config", "log-level"], ["dev"]);
  if (f.values.has("dev")) fail("-dev is not supported by this lab stand-in", 1);
  const files = f.values.get("config") ?? [];
  if (files.length !== 1)
    fail("Must specify exactly one config path using -config (this lab stand-in)", 1);
  let config;
  try {
    config = loadServerConfig(files[0]!);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message, 1);
    throw e;
  }
  try {
    await new BaoServer(config).start();
  } catch (e) {
    fail((e as Error).message, 1);
  }
}

async function main() {
  const argv = process.argv.slice(2);
  const [a, b] = argv;
  if (a === "version" || a === "-version" || a === "--version") {
    process.stdout.write(`OpenBao v${VERSION} (lab stand-in), built 2025-01-01T00:00:00Z\n`);
    return;
  }
  const two: Record<string, (args: string[]) => Promise<void>> = {
    "operator init": operatorInit,
    "operator unseal": operatorUnseal,
    "operator seal": operatorSeal,
    "auth enable": authEnable,
    "auth list": authList,
    "policy write": policyWrite,
    "policy read": policyRead,
    "token lookup": tokenLookup,
  };
  const one: Record<string, (args: string[]) => Promise<void>> = { server, status, write, read };
  const pair = `${a} ${b}`;
  if (two[pair]) return two[pair](argv.slice(2));
  if (a && one[a]) return one[a](argv.slice(1));
  fail(
    `Usage: bao <command> [args]\n\nbao: '${argv.join(" ")}' is not a command this lab stand-in implements (see test/standins/README.md)`,
    127,
  );
}

main().catch((e: unknown) => fail(String((e as Error).stack ?? e), 1));
