// step-ca stand-in: `step-ca CONFIG [--password-file F]`. Loads ca.json strictly, the root and
// the intermediate (software key only), serves HTTPS on `address` with a certificate from the
// intermediate, and signs CSRs authorized by JWK provisioner one-time tokens.
import * as jose from "jose";
import { createHash, webcrypto, X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { fail, log, parseFlags } from "../common/cli.js";
import { parseDuration } from "../common/hcl.js";
import {
  CaConfigError,
  durations,
  loadCaConfig,
  type CaConfig,
  type ProvisionerConfig,
} from "./config.js";
import {
  certPem,
  classifySans,
  issueLeaf,
  loadSigningKey,
  newTlsKey,
  parseCsr,
  pemCerts,
  type SigningKey,
} from "./x509.js";

const VERSION = "0.28.1";
const SEE_LOGS = "Please see the certificate authority logs for more info.";
const MAX_BODY = 1 << 20;

/** An API error rendered as step-ca renders errs.Error: {"status", "message"}. */
class CaError extends Error {
  constructor(
    public status: number,
    public detail: string,
    public clientMessage: string,
  ) {
    super(detail);
  }
}
const unauthorized = (detail: string) =>
  new CaError(
    401,
    detail,
    `The request lacked necessary authorization to be completed. ${SEE_LOGS}`,
  );
const forbidden = (detail: string) =>
  new CaError(403, detail, `The request was forbidden by the certificate authority: ${detail}`);
const badRequest = (detail: string) =>
  new CaError(400, detail, `The request could not be completed: ${detail}`);

/** Everything loaded from ca.json; replaced as a whole on SIGHUP. */
interface Authority {
  config: CaConfig;
  roots: X509Certificate[];
  intermediate: X509Certificate;
  key: SigningKey;
  provisioners: { config: ProvisionerConfig; key: jose.CryptoKey | Uint8Array }[];
  audiences: Set<string>;
}

function readPasswordFile(file: string): string {
  try {
    return readFileSync(file, "utf8").replace(/\s+$/, "");
  } catch (e) {
    throw new CaConfigError(`error reading password file: ${(e as Error).message}`);
  }
}

function readCerts(path: string, what: string): X509Certificate[] {
  let certs: X509Certificate[];
  try {
    certs = pemCerts(readFileSync(path, "utf8"));
  } catch (e) {
    throw new CaConfigError(`error reading ${what} ${path}: ${(e as Error).message}`);
  }
  if (!certs.length)
    throw new CaConfigError(`error reading ${what} ${path}: no PEM certificate found`);
  return certs;
}

async function loadAuthority(file: string, passwordFile?: string): Promise<Authority> {
  const config = loadCaConfig(file);
  // The production shape: the intermediate key lives in a YubiKey PIV slot.
  if (config.key.startsWith("yubikey:") || config.kms?.type.toLowerCase() === "yubikey")
    throw new CaConfigError(
      `${file}: key "${config.key}" (kms ${config.kms?.type ?? "none"}) needs a YubiKey build of ` +
        "step-ca (CGO with PC/SC, pcscd and the token): this lab stand-in signs with a software " +
        "key file only",
    );
  if (/^[a-z0-9]+:/.test(config.key))
    throw new CaConfigError(`${file}: key "${config.key}": unsupported KMS URI in this stand-in`);
  const roots = (Array.isArray(config.root) ? config.root : [config.root]).flatMap((r) =>
    readCerts(r, "root certificate"),
  );
  const intermediate = readCerts(config.crt, "intermediate certificate")[0]!;
  if (!roots.some((r) => intermediate.checkIssued(r) && intermediate.verify(r.publicKey)))
    throw new CaConfigError(`${file}: crt ${config.crt} is not signed by the root ${config.root}`);
  const password = passwordFile ? readPasswordFile(passwordFile) : config.password;
  let keyPem: string;
  try {
    keyPem = readFileSync(config.key, "utf8");
  } catch (e) {
    throw new CaConfigError(`error reading key ${config.key}: ${(e as Error).message}`);
  }
  if (/ENCRYPTED/.test(keyPem) && password === undefined)
    throw new CaConfigError(`${config.key} is encrypted: pass --password-file or set "password"`);
  let key: SigningKey;
  try {
    key = await loadSigningKey(keyPem, password);
  } catch (e) {
    throw new CaConfigError(`error decrypting or parsing ${config.key}: ${(e as Error).message}`);
  }
  const spki = Buffer.from(await webcrypto.subtle.exportKey("spki", key.publicKey));
  if (!spki.equals(intermediate.publicKey.export({ format: "der", type: "spki" })))
    throw new CaConfigError(`${file}: key ${config.key} does not match crt ${config.crt}`);
  const provisioners = [];
  for (const p of config.authority.provisioners ?? []) {
    if (p.type.toUpperCase() !== "JWK") continue; // ACME: accepted in ca.json, not served
    try {
      provisioners.push({ config: p, key: await jose.importJWK(p.key, p.key.alg ?? "ES256") });
    } catch (e) {
      throw new CaConfigError(`${file}: provisioner "${p.name}": bad key: ${(e as Error).message}`);
    }
  }
  const port = portOf(config.address);
  const audiences = new Set<string>();
  for (const name of config.dnsNames)
    for (const path of ["/1.0/sign", "/sign"]) {
      audiences.add(`https://${name}${path}`);
      audiences.add(`https://${name}:${port}${path}`);
    }
  return { config, roots, intermediate, key, provisioners, audiences };
}

function portOf(address: string): number {
  const m = /:(\d+)$/.exec(address);
  if (!m) throw new CaConfigError(`address "${address}" has no port`);
  return Number(m[1]);
}

function hostOf(address: string): string | undefined {
  const host = address.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  return host === "" ? undefined : host;
}

// ------------------------------------------------------------------ token store
/** One-time tokens already used; kept under db.dataSource like the real badger DB. */
class UsedTokens {
  private used = new Set<string>();
  constructor(private file?: string) {
    if (!file) return;
    try {
      for (const id of JSON.parse(readFileSync(file, "utf8")) as string[]) this.used.add(id);
    } catch {
      // a missing store is an empty one
    }
  }
  /** Marks a token used; false when it was used before. */
  use(id: string): boolean {
    if (this.used.has(id)) return false;
    this.used.add(id);
    if (this.file) {
      const tmp = `${this.file}.tmp-${process.pid}`;
      writeFileSync(tmp, JSON.stringify([...this.used]), { mode: 0o600 });
      renameSync(tmp, this.file);
    }
    return true;
  }
}

// ------------------------------------------------------------------ signing
interface Authorized {
  provisioner: ProvisionerConfig;
  subject: string;
  sans: string[];
}

async function authorize(a: Authority, used: UsedTokens, token: string): Promise<Authorized> {
  let header: jose.ProtectedHeaderParameters;
  let unverified: jose.JWTPayload;
  try {
    header = jose.decodeProtectedHeader(token);
    unverified = jose.decodeJwt(token);
  } catch (e) {
    throw unauthorized(`authority.Authorize: error parsing token: ${(e as Error).message}`);
  }
  const p = a.provisioners.find(
    (x) => x.config.name === unverified.iss && x.config.key.kid === header.kid,
  );
  if (!p)
    throw unauthorized(
      `authority.Authorize: provisioner not found or invalid audience (iss "${unverified.iss}", kid "${header.kid}")`,
    );
  let claims: jose.JWTPayload;
  try {
    ({ payload: claims } = await jose.jwtVerify(token, p.key, {
      algorithms: [p.config.key.alg ?? "ES256"],
      clockTolerance: 60,
      requiredClaims: ["exp", "iat", "nbf", "sub", "aud", "jti"],
    }));
  } catch (e) {
    throw unauthorized(`jwk.authorizeToken; error verifying jwk token: ${(e as Error).message}`);
  }
  const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud ?? ""];
  if (!auds.some((x) => a.audiences.has(x)))
    throw unauthorized(`jwk.authorizeToken; invalid jwk token audience ${JSON.stringify(auds)}`);
  if (!claims.sub) throw unauthorized("jwk.authorizeToken; jwk token subject cannot be empty");
  if (!used.use(`${p.config.name}:${claims.jti}`))
    throw unauthorized("authority.authorizeToken: token already used");
  const sans = Array.isArray(claims.sans) ? (claims.sans as string[]) : [];
  return { provisioner: p.config, subject: claims.sub, sans: sans.length ? sans : [claims.sub] };
}

function sameSet(a: string[], b: string[]) {
  const x = [...new Set(a.map((s) => s.toLowerCase()))].sort();
  const y = [...new Set(b.map((s) => s.toLowerCase()))].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** The requested notAfter: a Go duration from now or an RFC 3339 time. */
function requestedNotAfter(value: unknown, now: number): number | undefined {
  if (value === undefined || value === "" || value === null) return undefined;
  if (typeof value !== "string") throw badRequest(`invalid notAfter ${JSON.stringify(value)}`);
  if (/^\d{4}-\d\d-\d\dT/.test(value)) {
    const t = Date.parse(value);
    if (Number.isNaN(t)) throw badRequest(`invalid notAfter "${value}"`);
    return t;
  }
  try {
    return now + parseDuration(value, "notAfter");
  } catch (e) {
    throw badRequest((e as Error).message);
  }
}

function goDuration(ms: number): string {
  const h = Math.floor(ms / 36e5);
  const m = Math.floor((ms % 36e5) / 6e4);
  const s = Math.round((ms % 6e4) / 1e3);
  return `${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${s}s`;
}

async function sign(a: Authority, used: UsedTokens, body: Record<string, unknown>) {
  if (typeof body.csr !== "string" || !body.csr) throw badRequest("missing csr");
  let csr;
  try {
    csr = await parseCsr(body.csr);
  } catch (e) {
    throw badRequest(`invalid csr: ${(e as Error).message}`);
  }
  if (typeof body.ott !== "string" || !body.ott) throw badRequest("missing ott");
  const auth = await authorize(a, used, body.ott);
  if (csr.commonName !== auth.subject)
    throw forbidden(
      `certificate request does not contain the valid common name - got ${csr.commonName}, want ${auth.subject}`,
    );
  const want = classifySans(auth.sans);
  const kinds = [
    ["DNS names", csr.sans.dns, want.dns],
    ["IP Addresses", csr.sans.ips, want.ips],
    ["email addresses", csr.sans.emails, want.emails],
    ["URIs", csr.sans.uris, want.uris],
  ] as const;
  for (const [what, got, expected] of kinds)
    if (got.length && !sameSet([...got], [...expected]))
      throw forbidden(
        `certificate request does not contain the valid ${what} - got [${got.join(" ")}], want [${expected.join(" ")}]`,
      );
  const now = Date.now();
  const d = durations(a.config, auth.provisioner);
  const notBefore = now - parseDuration(a.config.authority.backdate ?? "1m");
  const notAfter = requestedNotAfter(body.notAfter, now) ?? now + d.def;
  const asked = notAfter - now;
  if (asked < d.min)
    throw forbidden(
      `requested duration of ${goDuration(asked)} is less than the authorized minimum certificate duration of ${goDuration(d.min)}`,
    );
  if (asked > d.max)
    throw forbidden(
      `requested duration of ${goDuration(asked)} is more than the authorized maximum certificate duration of ${goDuration(d.max)}`,
    );
  const leaf = await issueLeaf({
    subject: auth.subject,
    publicKey: csr.csr.publicKey,
    sans: auth.sans,
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    issuer: a.intermediate,
    issuerKey: a.key,
    rsa: csr.csr.publicKey.algorithm.name.startsWith("RSA"),
  });
  log("info", "certificate issued", {
    provisioner: auth.provisioner.name,
    subject: auth.subject,
    sans: auth.sans,
    serial: leaf.serialNumber,
    notAfter: leaf.validTo,
  });
  const chain = [certPem(leaf), certPem(a.intermediate)];
  return { crt: chain[0], ca: chain[1], certChain: chain };
}

// ------------------------------------------------------------------ HTTP
function send(res: ServerResponse, status: number, data: unknown) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(data) + "\n");
}

function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let text = "";
    req.on("data", (d: Buffer) => {
      text += d.toString();
      if (text.length > MAX_BODY) reject(badRequest("request body too large"));
    });
    req.on("end", () => {
      try {
        const v = JSON.parse(text) as unknown;
        if (typeof v !== "object" || v === null || Array.isArray(v))
          throw new Error("not an object");
        resolve(v as Record<string, unknown>);
      } catch (e) {
        reject(badRequest(`error reading request body: ${(e as Error).message}`));
      }
    });
    req.on("error", reject);
  });
}

function rootFingerprint(c: X509Certificate): string {
  return createHash("sha256").update(c.raw).digest("hex");
}

async function handle(
  state: { a: Authority; used: UsedTokens },
  req: IncomingMessage,
  res: ServerResponse,
) {
  const { a, used } = state;
  const url = new URL(req.url ?? "/", "https://ca");
  const route = `${req.method} ${url.pathname}`;
  try {
    switch (route) {
      case "GET /health":
      case "GET /1.0/health":
        return send(res, 200, { status: "ok" });
      case "GET /version":
      case "GET /1.0/version":
        return send(res, 200, { version: VERSION, requireClientAuthentication: false });
      case "GET /roots":
      case "GET /1.0/roots":
        return send(res, 200, { crts: a.roots.map(certPem) });
      case "GET /provisioners":
      case "GET /1.0/provisioners":
        return send(res, 200, {
          provisioners: a.config.authority.provisioners ?? [],
          nextCursor: "",
        });
      case "POST /sign":
      case "POST /1.0/sign":
        return send(res, 201, await sign(a, used, await readBody(req)));
    }
    const root = /^\/(?:1\.0\/)?root\/([0-9a-fA-F]{64})$/.exec(url.pathname);
    if (req.method === "GET" && root) {
      const c = a.roots.find((r) => rootFingerprint(r) === root[1]!.toLowerCase());
      if (c) return send(res, 200, { ca: certPem(c) });
      throw new CaError(
        404,
        `root ${root[1]} not found`,
        `The requested resource could not be found. ${SEE_LOGS}`,
      );
    }
    throw new CaError(404, `no route ${route}`, "not found");
  } catch (e) {
    const err =
      e instanceof CaError
        ? e
        : new CaError(
            500,
            String((e as Error).stack ?? e),
            `The certificate authority encountered an Internal Server Error. ${SEE_LOGS}`,
          );
    log(err.status >= 500 ? "error" : "warning", err.detail, {
      path: url.pathname,
      status: err.status,
    });
    send(res, err.status, { status: err.status, message: err.clientMessage });
  }
}

/** A TLS certificate for the CA itself, for its dnsNames, issued by the intermediate. */
async function tlsCredentials(a: Authority) {
  const { keys, pem } = await newTlsKey();
  const now = Date.now();
  const leaf = await issueLeaf({
    subject: a.config.commonName ?? "Step Online CA",
    publicKey: keys.publicKey,
    sans: a.config.dnsNames,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 36e5),
    issuer: a.intermediate,
    issuerKey: a.key,
  });
  return { key: pem, cert: certPem(leaf) + certPem(a.intermediate) };
}

const USAGE = "usage: step-ca <config> [--password-file=<file>]";

async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === "version" || argv[0] === "--version") {
    process.stdout.write(
      `Smallstep CA/${VERSION} (linux/amd64)\nRelease Date: 2024-11-21 (lab stand-in)\n`,
    );
    return;
  }
  const f = parseFlags(argv, ["help", "h"]);
  const known = new Set(["password-file"]);
  for (const name of f.values.keys())
    if (!known.has(name)) fail(`flag provided but not defined: -${name}\n${USAGE}`, 1);
  if (f.positional.length !== 1) fail(USAGE, 1);
  const configFile = f.positional[0]!;
  const passwordFile = f.values.get("password-file")?.at(-1);
  let a: Authority;
  try {
    a = await loadAuthority(configFile, passwordFile);
  } catch (e) {
    if (e instanceof CaConfigError) fail(e.message, 1);
    throw e;
  }
  const dbFile = a.config.db ? join(a.config.db.dataSource, "standin-used-tokens.json") : undefined;
  if (a.config.db) mkdirSync(a.config.db.dataSource, { recursive: true, mode: 0o700 });
  const state = { a, used: new UsedTokens(dbFile) };
  const server = https.createServer(
    { ...(await tlsCredentials(a)), minVersion: "TLSv1.2" },
    (req, res) => {
      void handle(state, req, res);
    },
  );
  process.on("SIGHUP", () => {
    loadAuthority(configFile, passwordFile)
      .then(async (next) => {
        server.setSecureContext({ ...(await tlsCredentials(next)), minVersion: "TLSv1.2" });
        state.a = next;
        log("info", "reloaded configuration", { config: configFile });
      })
      .catch((e: unknown) =>
        log("error", `reload failed, keeping the old configuration: ${(e as Error).message}`),
      );
  });
  for (const sig of ["SIGTERM", "SIGINT"] as const)
    process.on(sig, () => server.close(() => process.exit(0)));
  server.on("error", (e) => fail(`error serving on ${a.config.address}: ${e.message}`, 1));
  log("info", `Starting Smallstep CA/${VERSION} (linux/amd64) [lab stand-in]`);
  log("info", `X.509 Root Fingerprint: ${rootFingerprint(a.roots[0]!)}`);
  server.listen(portOf(a.config.address), hostOf(a.config.address), () =>
    log("info", `Serving HTTPS on ${a.config.address} ...`),
  );
}

main().catch((e: unknown) => fail(String((e as Error).stack ?? e), 1));
