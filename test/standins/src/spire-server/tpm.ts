// Server side of tpm_devid attestation.
//
// start: the agent sends its DevID chain (PEM, leaf first), the DevID key's TPMT_PUBLIC and its
// RSA EK certificate. The server checks the chain against devid_ca_path, the EK certificate
// against endorsement_ca_path (the issuer itself: no intermediates are taken from the agent),
// that the TPMT_PUBLIC is a P-256 signing key equal to the DevID certificate's key, and answers
// with a nonce and a credential made with `tpm2_makecredential -T none` for the EK public key
// and the DevID key's TPM name.
// finish: the agent returns the nonce signed by the DevID key (TPMT_SIGNATURE) and the secret
// recovered with tpm2_activatecredential, which only the TPM holding both the EK and the DevID
// key can do.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes, timingSafeEqual, verify, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiError, log } from "../common/cli.js";
import { dnAttr, parseCerts, sha1Hex, verifyChain } from "../common/pki.js";
import type { Selector, TpmChallenge } from "../spire/shared.js";

interface Session {
  nonce: Buffer;
  secret: Buffer;
  leaf: X509Certificate;
  agentId: string;
  selectors: Selector[];
  expires: number;
}

/** The fields of an ECC TPMT_PUBLIC that matter here. */
export interface EccPublic {
  nameAlg: number;
  attributes: number;
  scheme: number;
  schemeHash: number;
  curve: number;
  x: Buffer;
  y: Buffer;
}

const TPM_ALG_ECC = 0x0023;
const TPM_ALG_NULL = 0x0010;
const TPM_ALG_SHA256 = 0x000b;
const TPM_ECC_NIST_P256 = 0x0003;
const ATTR_SIGN = 0x00040000;

/** Decodes a bare TPMT_PUBLIC of an ECC key (the devid_pub_path format). */
export function parseEccPublic(buf: Buffer): EccPublic {
  let at = 0;
  const u16 = () => {
    if (at + 2 > buf.length) throw new Error("TPMT_PUBLIC is truncated");
    const v = buf.readUInt16BE(at);
    at += 2;
    return v;
  };
  const bytes = () => {
    const n = u16();
    if (at + n > buf.length) throw new Error("TPMT_PUBLIC is truncated");
    const b = buf.subarray(at, at + n);
    at += n;
    return b;
  };
  const type = u16();
  if (type !== TPM_ALG_ECC)
    throw new Error(
      `DevID key type 0x${type.toString(16)} is not ECC (only P-256 DevIDs are supported)`,
    );
  const nameAlg = u16();
  const attributes = buf.readUInt32BE(at);
  at += 4;
  bytes(); // authPolicy
  const sym = u16();
  if (sym !== TPM_ALG_NULL) at += 4;
  const scheme = u16();
  const schemeHash = scheme === TPM_ALG_NULL ? TPM_ALG_NULL : u16();
  const curve = u16();
  const kdf = u16();
  if (kdf !== TPM_ALG_NULL) u16();
  const x = Buffer.from(bytes());
  const y = Buffer.from(bytes());
  if (at !== buf.length) throw new Error("TPMT_PUBLIC has trailing bytes (a TPM2B size prefix?)");
  return { nameAlg, attributes, scheme, schemeHash, curve, x, y };
}

/** The TPM name of an object: nameAlg || H(TPMT_PUBLIC). */
export function tpmName(pub: Buffer, nameAlg: number): Buffer {
  if (nameAlg !== TPM_ALG_SHA256) throw new Error("only sha256 name algorithms are supported");
  const alg = Buffer.alloc(2);
  alg.writeUInt16BE(nameAlg);
  return Buffer.concat([alg, createHash("sha256").update(pub).digest()]);
}

/** An ECDSA TPMT_SIGNATURE (tpm2_sign's default output) as an IEEE P1363 r||s signature. */
export function ecdsaFromTpmt(sig: Buffer): Buffer {
  if (sig.length < 8 || sig.readUInt16BE(0) !== 0x0018)
    throw new Error("signature is not a TPMT_SIGNATURE with ECDSA");
  let at = 4;
  const part = () => {
    const n = sig.readUInt16BE(at);
    const b = sig.subarray(at + 2, at + 2 + n);
    at += 2 + n;
    return Buffer.concat([Buffer.alloc(Math.max(0, 32 - b.length)), b]).subarray(-32);
  };
  return Buffer.concat([part(), part()]);
}

export class TpmDevidVerifier {
  private sessions = new Map<string, Session>();
  private devidRoots: X509Certificate[];
  private ekRoots: X509Certificate[];

  constructor(
    readonly td: string,
    readonly conf: { devid_ca_path: string; endorsement_ca_path: string },
  ) {
    this.devidRoots = readCerts(conf.devid_ca_path, "devid_ca_path");
    this.ekRoots = readCerts(conf.endorsement_ca_path, "endorsement_ca_path");
  }

  start(body: Record<string, unknown>): TpmChallenge {
    try {
      return this.challenge(body);
    } catch (e) {
      const msg = `failed to attest: ${(e as Error).message}`;
      log("error", "Failed to attest agent", { attestor: "tpm_devid", error: msg });
      throw new ApiError(403, msg);
    }
  }

  private challenge(body: Record<string, unknown>): TpmChallenge {
    const chain = parseCerts(String(body.devidChain ?? ""));
    if (!chain.length) throw new Error("no DevID certificate presented");
    const leaf = chain[0]!;
    let path: X509Certificate[];
    try {
      path = verifyChain(chain, this.devidRoots);
    } catch (e) {
      throw new Error(
        `unable to verify DevID signature: verification failed: ${(e as Error).message} (devid_ca_path ${this.conf.devid_ca_path})`,
      );
    }
    const ek = new X509Certificate(Buffer.from(String(body.ekCert ?? ""), "base64"));
    const issuer = this.ekRoots.find((r) => ek.checkIssued(r) && ek.verify(r.publicKey));
    if (!issuer)
      throw new Error(
        `cannot verify endorsement certificate: it is not signed by a CA in endorsement_ca_path (${this.conf.endorsement_ca_path}); issuer ${ek.issuer.replace(/\n/g, ",")}`,
      );
    if (ek.publicKey.asymmetricKeyType !== "rsa")
      throw new Error("the EK certificate's key is not RSA");

    const pubBlob = Buffer.from(String(body.devidPub ?? ""), "base64");
    const pub = parseEccPublic(pubBlob);
    if (!(pub.attributes & ATTR_SIGN)) throw new Error("DevID key is not a signing key");
    if (pub.scheme === TPM_ALG_NULL || pub.schemeHash === TPM_ALG_NULL)
      throw new Error("DevID key has no signature scheme (scheme hash is NULL)");
    if (pub.curve !== TPM_ECC_NIST_P256) throw new Error("DevID key is not on NIST P-256");
    const jwk = leaf.publicKey.export({ format: "jwk" });
    if (
      Buffer.from(jwk.x ?? "", "base64url").compare(pub.x) !== 0 ||
      Buffer.from(jwk.y ?? "", "base64url").compare(pub.y) !== 0
    )
      throw new Error("the DevID certificate's public key does not match the TPM DevID key");

    const nonce = randomBytes(32);
    const secret = randomBytes(32);
    const credential = makeCredential(ek, secret, tpmName(pubBlob, pub.nameAlg));
    const selectors: Selector[] = [
      { type: "tpm_devid", value: `subject:cn:${dnAttr(leaf.subject, "CN") ?? ""}` },
      { type: "tpm_devid", value: `issuer:cn:${dnAttr(leaf.issuer, "CN") ?? ""}` },
      ...path.slice(1).map((c) => ({ type: "tpm_devid", value: `fingerprint:${sha1Hex(c)}` })),
    ];
    const session = randomBytes(16).toString("hex");
    const now = Date.now();
    for (const [k, s] of this.sessions) if (s.expires < now) this.sessions.delete(k);
    this.sessions.set(session, {
      nonce,
      secret,
      leaf,
      agentId: `spiffe://${this.td}/spire/agent/tpm_devid/${sha1Hex(leaf)}`,
      selectors,
      expires: now + 60_000,
    });
    return { session, nonce: nonce.toString("base64"), credential: credential.toString("base64") };
  }

  async finish(body: Record<string, unknown>) {
    const s = this.sessions.get(String(body.session ?? ""));
    this.sessions.delete(String(body.session ?? ""));
    const fail = (why: string): never => {
      const msg = `failed to attest: ${why}`;
      log("error", "Failed to attest agent", { attestor: "tpm_devid", error: msg });
      throw new ApiError(403, msg);
    };
    if (!s || s.expires < Date.now()) return fail("attestation session expired or unknown");
    let sig: Buffer;
    try {
      sig = ecdsaFromTpmt(Buffer.from(String(body.signature ?? ""), "base64"));
    } catch (e) {
      return fail((e as Error).message);
    }
    const ok = verify("sha256", s.nonce, { key: s.leaf.publicKey, dsaEncoding: "ieee-p1363" }, sig);
    if (!ok) return fail("DevID proof of possession failed: the nonce signature does not verify");
    const secret = Buffer.from(String(body.secret ?? ""), "base64");
    if (secret.length !== s.secret.length || !timingSafeEqual(secret, s.secret))
      return fail("credential activation failed: the DevID key and the EK are not in the same TPM");
    return { agentId: s.agentId, selectors: s.selectors };
  }
}

function readCerts(path: string, key: string): X509Certificate[] {
  let certs: X509Certificate[];
  try {
    certs = parseCerts(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(
      `NodeAttestor "tpm_devid": cannot read ${key} ${path}: ${(e as Error).message}`,
    );
  }
  if (!certs.length)
    throw new Error(`NodeAttestor "tpm_devid": ${key} ${path} holds no certificates`);
  return certs;
}

/** tpm2_makecredential without a TPM, for the EK's RSA public key (default EK template). */
function makeCredential(ek: X509Certificate, secret: Buffer, name: Buffer): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "spire-server-mc-"));
  try {
    const pem = ek.publicKey.export({ format: "pem", type: "spki" });
    writeFileSync(join(dir, "ek.pem"), pem);
    writeFileSync(join(dir, "secret"), secret);
    execFileSync(
      "tpm2_makecredential",
      [
        "-T",
        "none",
        "-u",
        join(dir, "ek.pem"),
        "-G",
        "rsa",
        "-s",
        join(dir, "secret"),
        "-n",
        name.toString("hex"),
        "-o",
        join(dir, "cred"),
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    return readFileSync(join(dir, "cred"));
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`tpm2_makecredential failed: ${err.stderr?.toString().trim() || err.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
