import { readFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import "reflect-metadata"; // @peculiar/x509 needs the Reflect metadata API before it loads
import * as x509lib from "@peculiar/x509";
import { outputTail } from "../command-error.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { inputError, type Where } from "../errors.js";
import { quote } from "../shell.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition } from "./types.js";

x509lib.cryptoProvider.set(webcrypto as unknown as Crypto);

/** Arguments of the `x509` module: where the certificate is, and what it must satisfy. */
export interface X509Args {
  /** A PEM or DER certificate file on the host. */
  path?: string;
  /** A read-only shell command on the host that prints the certificate (PEM or DER). */
  command?: string;
  /** Names the source in messages, e.g. "NV index 0x01c00002". */
  describe?: string;
  /** Controller file with the PEM CA certificates the certificate must chain to. */
  caBundle?: string;
  /** Fail when the certificate expires within this many days. */
  minDaysLeft?: number;
}

/** What `x509` registers under `result.cert`. */
export interface CertFacts {
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  daysLeft: number;
  sans: string[];
  sha1: string;
  /** Subject of the trusted CA that signed it, when a bundle was given and it verified. */
  verifiedBy?: string;
}

interface Valid {
  read: string;
  source: string;
  caBundle?: string;
  minDaysLeft?: number;
}

type Facts =
  | { kind: "absent"; detail: string }
  | { kind: "unparsable"; detail: string }
  | { kind: "cert"; cert: CertFacts; chain: "verified" | "unverified" | "not-checked" };

/**
 * Reads a certificate from the host, parses it on the controller and checks its chain and
 * expiry. Never changes the host.
 *
 * @example
 * x509({ command: "tpm2_nvread 0x01c00002 -C o", describe: "EK certificate", caBundle: "lab/ek-ca.pem", minDaysLeft: 30 })
 */
export function x509(args: X509Args & TaskOptions): Task {
  return makeTask("x509", args, callerLocation());
}

export const x509Module: ModuleDefinition<Valid, Facts> = {
  name: "x509",
  validate(raw, where) {
    const args = new ArgReader("x509", raw, where, [
      "path",
      "command",
      "describe",
      "caBundle",
      "minDaysLeft",
    ]);
    if (args.has("path") === args.has("command"))
      args.fail("ARG_CONFLICT", `x509: give exactly one of "path" and "command"`);
    const path = args.optionalString("path");
    const read = path ? `cat -- ${quote(path)}` : args.string("command");
    const valid: Valid = { read, source: args.optionalString("describe") ?? path ?? read };
    const caBundle = args.optionalString("caBundle");
    if (caBundle) valid.caBundle = caBundle;
    const minDaysLeft = args.optionalNumber("minDaysLeft");
    if (minDaysLeft !== undefined) valid.minDaysLeft = minDaysLeft;
    return valid;
  },
  label: (args) => `x509 ${args.source}`,
  async facts(args, reader, ctx) {
    const result = await reader.probe(args.read);
    if (result.rc !== 0 || result.stdout.length === 0)
      return { kind: "absent", detail: outputTail(result) || `exit code ${result.rc}` };
    let cert: x509lib.X509Certificate;
    try {
      cert = parseCertificate(result.stdout);
    } catch (error) {
      return { kind: "unparsable", detail: (error as Error).message };
    }
    const facts = await describeCert(cert);
    if (!args.caBundle) return { kind: "cert", cert: facts, chain: "not-checked" };
    const signer = await findSigner(cert, loadBundle(args.caBundle, ctx.where));
    return signer
      ? { kind: "cert", cert: { ...facts, verifiedBy: signer }, chain: "verified" }
      : { kind: "cert", cert: facts, chain: "unverified" };
  },
  plan(args, facts) {
    if (facts.kind === "absent")
      return {
        status: "failed",
        reason: `no certificate at ${args.source}${readWith(args)}: ${facts.detail}`,
        ops: [],
      };
    if (facts.kind === "unparsable")
      return {
        status: "failed",
        reason: `the certificate at ${args.source} does not parse: ${facts.detail}`,
        ops: [],
      };
    const { cert } = facts;
    const result = { cert };
    if (facts.chain === "unverified") {
      const reason = `certificate at ${args.source} (issuer "${cert.issuer}") does not chain to any CA in ${args.caBundle}`;
      return { status: "failed", reason, ops: [], result };
    }
    if (cert.daysLeft < 0)
      return {
        status: "failed",
        reason: `certificate at ${args.source} expired on ${cert.notAfter}`,
        ops: [],
        result,
      };
    if (args.minDaysLeft !== undefined && cert.daysLeft < args.minDaysLeft) {
      const reason = `certificate at ${args.source} expires in ${cert.daysLeft} days (${cert.notAfter}), less than the required ${args.minDaysLeft}`;
      return { status: "failed", reason, ops: [], result };
    }
    const chain = facts.chain === "verified" ? `, signed by "${cert.verifiedBy}"` : "";
    return {
      status: "ok",
      reason: `subject "${cert.subject}", issuer "${cert.issuer}"${chain}, ${cert.daysLeft} days left`,
      ops: [],
      result,
    };
  },
};

/** Parses PEM or DER; DER read from a TPM NV index may carry padding after the certificate. */
export function parseCertificate(bytes: Buffer): x509lib.X509Certificate {
  const text = bytes.toString("latin1");
  if (text.includes("-----BEGIN CERTIFICATE-----"))
    return new x509lib.X509Certificate(text.slice(text.indexOf("-----BEGIN CERTIFICATE-----")));
  return new x509lib.X509Certificate(new Uint8Array(trimDer(bytes)));
}

/** Cuts a DER SEQUENCE to the length its header states. */
function trimDer(bytes: Buffer): Buffer {
  if (bytes[0] !== 0x30 || bytes.length < 2) return bytes;
  const first = bytes[1] as number;
  if (first < 0x80) return bytes.subarray(0, 2 + first);
  const count = first & 0x7f;
  let length = 0;
  for (let i = 0; i < count; i += 1) length = length * 256 + (bytes[2 + i] as number);
  return bytes.subarray(0, 2 + count + length);
}

async function describeCert(cert: x509lib.X509Certificate): Promise<CertFacts> {
  const sanExtension = cert.getExtension(x509lib.SubjectAlternativeNameExtension);
  const sans = sanExtension ? sanExtension.names.items.map((n) => `${n.type}:${n.value}`) : [];
  const thumbprint = Buffer.from(await cert.getThumbprint("SHA-1")).toString("hex");
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    serialNumber: cert.serialNumber,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    daysLeft: Math.floor((cert.notAfter.getTime() - Date.now()) / 86_400_000),
    sans,
    sha1: thumbprint,
  };
}

/** Reads every certificate of a PEM bundle on the controller. */
export function loadBundle(file: string, where: Where): x509lib.X509Certificate[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw inputError(
      "playbook",
      "CA_BUNDLE_UNREADABLE",
      `cannot read CA bundle ${file}: ${(error as Error).message}`,
      where,
    );
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0)
    throw inputError(
      "playbook",
      "CA_BUNDLE_EMPTY",
      `CA bundle ${file} holds no PEM certificate`,
      where,
    );
  return blocks.map((block) => new x509lib.X509Certificate(block));
}

/** The subject of the bundle certificate whose key signed `cert` and that is valid now. */
async function findSigner(
  cert: x509lib.X509Certificate,
  bundle: x509lib.X509Certificate[],
): Promise<string | undefined> {
  const now = new Date();
  for (const ca of bundle) {
    if (ca.subject !== cert.issuer || ca.notBefore > now || ca.notAfter < now) continue;
    if (await cert.verify({ publicKey: ca.publicKey, signatureOnly: true })) return ca.subject;
  }
  return undefined;
}

/** The command a certificate was read with, when it is not a plain file read: it names the TCTI. */
function readWith(args: Valid): string {
  return args.read.startsWith("cat -- ") ? "" : ` (read with: ${args.read})`;
}
