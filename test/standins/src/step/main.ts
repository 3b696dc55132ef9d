// step stand-in: the subset of the smallstep CLI the roles call (see test/standins/README.md).
import * as jose from "jose";
import { createHash, randomBytes, X509Certificate } from "node:crypto";
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import https from "node:https";
import { isIP } from "node:net";
import { fail, parseFlags, type Flags } from "../common/cli.js";
import { parseDuration } from "../common/hcl.js";
import { allSans, parseCsr, pemCerts } from "../step-ca/x509.js";

const VERSION = "0.28.1";
/** step's PBES2 iteration count for encrypted JWKs (go.step.sm/crypto jose.PBKDF2Iterations). */
const PBKDF2_ITERATIONS = 600_000;

/** Rejects flags the command does not define, as urfave/cli does. */
function parse(argv: string[], known: string[], bools: string[] = []): Flags {
  const f = parseFlags(argv, bools);
  for (const name of f.values.keys())
    if (!known.includes(name) && !bools.includes(name))
      fail(`flag provided but not defined: -${name}`, 1);
  return f;
}

function get(f: Flags, name: string): string | undefined {
  return f.values.get(name)?.at(-1);
}

function need(f: Flags, name: string, command: string): string {
  const v = get(f, name);
  if (v === undefined || v === "") fail(`'step ${command}' requires the '--${name}' flag`, 1);
  return v;
}

function readPassword(file: string): string {
  try {
    return readFileSync(file, "utf8").replace(/\s+$/, "");
  } catch (e) {
    fail(`error reading ${file}: ${(e as Error).message}`, 1);
  }
}

function writeAtomic(path: string, data: string, mode: number) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  renameSync(tmp, path);
}

function refuseOverwrite(path: string, force: boolean) {
  if (!force && existsSync(path))
    fail(`file ${path} already exists: use --force to overwrite it (no terminal to ask)`, 1);
}

// ------------------------------------------------------------------ talking to the CA
interface Ca {
  url: URL;
  rootPem: string;
  root: X509Certificate;
}

function caFrom(f: Flags, command: string): Ca {
  const raw = need(f, "ca-url", command);
  const rootFile = need(f, "root", command);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail(`invalid value '${raw}' for flag '--ca-url'`, 1);
  }
  if (url.protocol !== "https:") fail(`invalid value '${raw}' for flag '--ca-url': not https`, 1);
  let rootPem: string;
  try {
    rootPem = readFileSync(rootFile, "utf8");
  } catch (e) {
    fail(`error reading ${rootFile}: ${(e as Error).message}`, 1);
  }
  const root = pemCerts(rootPem)[0];
  if (!root) fail(`error reading ${rootFile}: no PEM certificate found`, 1);
  return { url, rootPem, root };
}

/** One HTTPS request to the CA, verifying its certificate against --root only. */
function request(
  ca: Ca,
  path: string,
  body?: unknown,
): Promise<{ status: number; data: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const target = new URL(path, ca.url);
    const req = https.request(
      target,
      {
        method: body === undefined ? "GET" : "POST",
        ca: ca.rootPem,
        ...(isIP(ca.url.hostname) ? {} : { servername: ca.url.hostname }),
        headers: { "Content-Type": "application/json", "User-Agent": `Smallstep CLI/${VERSION}` },
        timeout: 15_000,
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              data: JSON.parse(text) as Record<string, unknown>,
            });
          } catch {
            reject(new Error(`error parsing response from ${target.href}: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`client GET ${target.href} failed: timeout`)));
    req.on("error", (e) => reject(new Error(`client ${target.href} failed: ${e.message}`)));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function call(ca: Ca, path: string, body?: unknown): Promise<Record<string, unknown>> {
  let r;
  try {
    r = await request(ca, path, body);
  } catch (e) {
    fail((e as Error).message, 1);
  }
  if (r.status >= 400) fail(String(r.data.message ?? `the CA answered ${r.status}`), 1);
  return r.data;
}

interface Provisioner {
  type: string;
  name: string;
  key: jose.JWK & { kid?: string };
  encryptedKey?: string;
}

async function provisioners(ca: Ca): Promise<Provisioner[]> {
  const data = await call(ca, "/provisioners");
  return (data.provisioners ?? []) as Provisioner[];
}

/** Opens the provisioner's encryptedKey with the password: the private JWK. */
async function provisionerKey(p: Provisioner, password: string) {
  if (!p.encryptedKey) fail(`provisioner '${p.name}' does not have an encrypted key`, 1);
  let plaintext: Uint8Array;
  try {
    ({ plaintext } = await jose.compactDecrypt(p.encryptedKey, new TextEncoder().encode(password), {
      maxPBES2Count: 10_000_000,
      keyManagementAlgorithms: ["PBES2-HS256+A128KW", "PBES2-HS384+A192KW", "PBES2-HS512+A256KW"],
    }));
  } catch {
    fail("error decrypting provisioner key: invalid password or corrupted key", 1);
  }
  const jwk = JSON.parse(new TextDecoder().decode(plaintext)) as jose.JWK;
  return jose.importJWK(jwk, jwk.alg ?? p.key.alg ?? "ES256");
}

/** A one-time token as `step ca token` makes it for a JWK provisioner (5 minutes). */
async function makeToken(
  ca: Ca,
  f: Flags,
  command: string,
  subject: string,
  sans: string[],
  passwordFlag: string[],
): Promise<string> {
  const name = need(f, "provisioner", command);
  const pwFile = passwordFlag.map((n) => get(f, n)).find((v) => v);
  if (!pwFile)
    fail(`'step ${command}' requires the '--${passwordFlag[0]}' flag (no terminal to ask)`, 1);
  const list = await provisioners(ca);
  const p = list.find((x) => x.name === name);
  if (!p) fail(`provisioner '${name}' not found`, 1);
  if (p.type.toUpperCase() !== "JWK")
    fail(`provisioner '${name}' is of type ${p.type}, not JWK`, 1);
  const key = await provisionerKey(p, readPassword(pwFile));
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({
    sans,
    sha: createHash("sha256").update(ca.root.raw).digest("hex"),
  })
    .setProtectedHeader({ alg: p.key.alg ?? "ES256", kid: p.key.kid, typ: "JWT" })
    .setIssuer(name)
    .setSubject(subject)
    .setAudience(new URL("/1.0/sign", ca.url).href)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .setJti(randomBytes(32).toString("hex"))
    .sign(key);
}

// ------------------------------------------------------------------ commands
async function caToken(argv: string[]) {
  const f = parse(
    argv,
    [
      "provisioner",
      "password-file",
      "provisioner-password-file",
      "ca-url",
      "root",
      "san",
      "not-after",
      "not-before",
    ],
    ["force"],
  );
  if (f.positional.length !== 1) fail("'step ca token' requires the <subject> argument", 1);
  const subject = f.positional[0]!;
  const ca = caFrom(f, "ca token");
  const sans = f.values.get("san") ?? [subject];
  process.stdout.write(
    (await makeToken(ca, f, "ca token", subject, sans, [
      "password-file",
      "provisioner-password-file",
    ])) + "\n",
  );
}

async function caSign(argv: string[]) {
  const f = parse(
    argv,
    [
      "provisioner",
      "provisioner-password-file",
      "password-file",
      "ca-url",
      "root",
      "not-after",
      "not-before",
      "token",
    ],
    ["force"],
  );
  if (f.positional.length !== 2)
    fail("'step ca sign' requires the <csr-file> and <crt-file> arguments", 1);
  const [csrFile, crtFile] = f.positional as [string, string];
  const ca = caFrom(f, "ca sign");
  let csrPem: string;
  try {
    csrPem = readFileSync(csrFile, "utf8");
  } catch (e) {
    fail(`error reading ${csrFile}: ${(e as Error).message}`, 1);
  }
  let csr;
  try {
    csr = await parseCsr(csrPem);
  } catch (e) {
    fail(`error parsing ${csrFile}: ${(e as Error).message}`, 1);
  }
  refuseOverwrite(crtFile, f.values.has("force"));
  const token =
    get(f, "token") ??
    (await makeToken(ca, f, "ca sign", csr.commonName, allSans(csr), [
      "provisioner-password-file",
      "password-file",
    ]));
  const notAfter = get(f, "not-after");
  const notBefore = get(f, "not-before");
  const data = await call(ca, "/1.0/sign", {
    csr: csrPem,
    ott: token,
    ...(notAfter ? { notAfter } : {}),
    ...(notBefore ? { notBefore } : {}),
  });
  const chain = (data.certChain as string[] | undefined) ?? [data.crt as string, data.ca as string];
  writeAtomic(crtFile, chain.map((c) => c.trim() + "\n").join(""), 0o600);
  process.stderr.write(`✔ CA: ${ca.url.href.replace(/\/$/, "")}\n✔ Certificate: ${crtFile}\n`);
}

async function caHealth(argv: string[]) {
  const f = parse(argv, ["ca-url", "root"]);
  const data = await call(caFrom(f, "ca health"), "/health");
  if (data.status !== "ok") fail(`the CA is not healthy: ${JSON.stringify(data)}`, 1);
  process.stdout.write("ok\n");
}

async function caProvisionerList(argv: string[]) {
  const f = parse(argv, ["ca-url", "root"]);
  const list = await provisioners(caFrom(f, "ca provisioner list"));
  process.stdout.write(JSON.stringify(list, null, 3) + "\n");
}

function needsRenewal(argv: string[]) {
  const f = parse(argv, ["expires-in", "roots", "servername"], ["bundle", "verbose"]);
  if (f.positional.length !== 1)
    fail("'step certificate needs-renewal' requires the <cert-file> argument", 255);
  const file = f.positional[0]!;
  try {
    statSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    fail(
      `stat ${file}: ${err.code === "ENOENT" ? "no such file or directory" : err.message}`,
      err.code === "ENOENT" ? 2 : 255,
    );
  }
  let certs: X509Certificate[];
  try {
    certs = pemCerts(readFileSync(file, "utf8"));
  } catch (e) {
    fail(`error parsing ${file}: ${(e as Error).message}`, 255);
  }
  if (!certs.length) fail(`error parsing ${file}: no PEM certificate found`, 255);
  const expiresIn = get(f, "expires-in") ?? "66%";
  const percent = expiresIn.endsWith("%");
  let threshold = 0;
  if (percent) {
    threshold = Number(expiresIn.slice(0, -1));
    if (!Number.isInteger(threshold) || threshold < 0 || threshold > 100)
      fail(
        `invalid value '${expiresIn}' for flag '--expires-in': value must be in range 0-100%`,
        255,
      );
  } else {
    try {
      threshold = parseDuration(expiresIn, "--expires-in");
    } catch {
      fail(`invalid value '${expiresIn}' for flag '--expires-in'`, 255);
    }
  }
  const now = Date.now();
  for (const cert of f.values.has("bundle") ? certs : certs.slice(0, 1)) {
    const notAfter = Date.parse(cert.validTo);
    const notBefore = Date.parse(cert.validFrom);
    const remaining = notAfter - now;
    const needs = percent
      ? Math.trunc((1 - remaining / (notAfter - notBefore)) * 100) >= threshold
      : threshold >= remaining;
    if (needs) {
      if (f.values.has("verbose")) process.stdout.write("certificate needs renewal\n");
      return;
    }
  }
  fail("certificate does not need renewal", 1);
}

async function jwkCreate(argv: string[]) {
  const f = parse(
    argv,
    ["password-file", "kty", "crv", "use", "kid"],
    ["force", "no-password", "insecure"],
  );
  if (f.positional.length !== 2)
    fail(
      "'step crypto jwk create' requires the <public-jwk-file> and <private-jwk-file> arguments",
      1,
    );
  const [pubFile, privFile] = f.positional as [string, string];
  if ((get(f, "kty") ?? "EC") !== "EC" || (get(f, "crv") ?? "P-256") !== "P-256")
    fail("this stand-in creates EC P-256 keys only", 1);
  const force = f.values.has("force");
  refuseOverwrite(pubFile, force);
  refuseOverwrite(privFile, force);
  const { publicKey, privateKey } = await jose.generateKeyPair("ES256", { extractable: true });
  const pub = await jose.exportJWK(publicKey);
  const kid = get(f, "kid") ?? (await jose.calculateJwkThumbprint(pub, "sha256"));
  const use = get(f, "use") ?? "sig";
  const pubJwk = { use, kty: pub.kty, kid, crv: pub.crv, alg: "ES256", x: pub.x, y: pub.y };
  const privJwk = { ...pubJwk, d: (await jose.exportJWK(privateKey)).d };
  let privText: string;
  if (f.values.has("no-password")) {
    if (!f.values.has("insecure")) fail("flag '--no-password' requires the '--insecure' flag", 1);
    privText = JSON.stringify(privJwk, null, 2);
  } else {
    const pwFile = get(f, "password-file");
    if (!pwFile)
      fail("'step crypto jwk create' requires the '--password-file' flag (no terminal to ask)", 1);
    const jwe = await new jose.FlattenedEncrypt(new TextEncoder().encode(JSON.stringify(privJwk)))
      .setProtectedHeader({
        alg: "PBES2-HS256+A128KW",
        enc: "A256GCM",
        cty: "jwk+json",
        p2c: PBKDF2_ITERATIONS,
      })
      .encrypt(new TextEncoder().encode(readPassword(pwFile)));
    privText = JSON.stringify(jwe, null, 2);
  }
  writeAtomic(pubFile, JSON.stringify(pubJwk, null, 2) + "\n", 0o644);
  writeAtomic(privFile, privText + "\n", 0o600);
  process.stderr.write(
    `Your public key has been saved in ${pubFile}.\nYour private key has been saved in ${privFile}.\n`,
  );
}

async function main() {
  const [a, b, c, ...rest] = process.argv.slice(2);
  const cmd = [a, b, c].filter(Boolean).join(" ");
  if (a === "version" || a === "--version") {
    process.stdout.write(
      `Smallstep CLI/${VERSION} (linux/amd64)\nRelease Date: 2024-11-21 (lab stand-in)\n`,
    );
  } else if (a === "ca" && b === "token") await caToken(process.argv.slice(4));
  else if (a === "ca" && b === "sign") await caSign(process.argv.slice(4));
  else if (a === "ca" && b === "health") await caHealth(process.argv.slice(4));
  else if (a === "ca" && b === "provisioner" && c === "list") await caProvisionerList(rest);
  else if (a === "certificate" && b === "needs-renewal") needsRenewal(process.argv.slice(4));
  else if (a === "crypto" && b === "jwk" && c === "create") await jwkCreate(rest);
  else
    fail(
      `step: '${cmd}' is not a command this lab stand-in implements (see test/standins/README.md)`,
      1,
    );
}

main().catch((e: unknown) => fail(String((e as Error).stack ?? e), 1));
