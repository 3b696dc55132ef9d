// Real X.509 for the stand-ins: keys from node:crypto, certificates built with @peculiar/x509.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, createPublicKey, KeyObject, webcrypto, X509Certificate } from "node:crypto";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;

/** An EC P-256 key pair with its PEM forms. */
export interface KeyPair {
  keys: CryptoKeyPair;
  privatePem: string;
  publicPem: string;
}

/** Makes a new extractable P-256 key pair. */
export async function newKeyPair(): Promise<KeyPair> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  return { keys, ...(await pemsOf(keys)) };
}

async function pemsOf(keys: CryptoKeyPair) {
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  const spki = await webcrypto.subtle.exportKey("spki", keys.publicKey);
  return {
    privatePem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"),
    publicPem: x509.PemConverter.encode(spki, "PUBLIC KEY"),
  };
}

/** Loads a PKCS#8 (or SEC1 "EC PRIVATE KEY") P-256 private key PEM as a usable key pair. */
export async function loadKeyPair(pem: string): Promise<KeyPair> {
  const { createPrivateKey } = await import("node:crypto");
  const key = createPrivateKey(pem);
  const pkcs8 = key.export({ format: "der", type: "pkcs8" });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  const privateKey = await webcrypto.subtle.importKey("pkcs8", pkcs8, EC, true, ["sign"]);
  const publicKey = await webcrypto.subtle.importKey("spki", spki, EC, true, ["verify"]);
  const keys = { privateKey, publicKey } as CryptoKeyPair;
  return { keys, ...(await pemsOf(keys)) };
}

/** Imports a SubjectPublicKeyInfo (PEM or DER) as a WebCrypto verify key. */
export async function importPublicKey(key: KeyObject): Promise<CryptoKey> {
  const spki = key.export({ format: "der", type: "spki" });
  return webcrypto.subtle.importKey("spki", spki, EC, true, ["verify"]);
}

/** What a certificate to issue looks like. */
export interface CertSpec {
  subject: string;
  issuer?: { cert: X509Certificate; key: CryptoKey };
  publicKey: CryptoKey;
  signingKey: CryptoKey;
  notAfter: Date;
  notBefore?: Date;
  ca?: boolean;
  pathLen?: number;
  uris?: string[];
  dnsNames?: string[];
  serverAuth?: boolean;
  clientAuth?: boolean;
}

/** Issues (or self-signs, without `issuer`) a certificate and returns its PEM. */
export async function issueCert(spec: CertSpec): Promise<X509Certificate> {
  const serial = webcrypto.getRandomValues(new Uint8Array(16));
  serial[0] = serial[0]! & 0x7f;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: Buffer.from(serial).toString("hex"),
    subject: spec.subject,
    issuer: spec.issuer ? new x509.X509Certificate(spec.issuer.cert.raw).subject : spec.subject,
    notBefore: spec.notBefore ?? new Date(Date.now() - 10_000),
    notAfter: spec.notAfter,
    signingAlgorithm: SIGN,
    publicKey: spec.publicKey,
    signingKey: spec.signingKey,
    extensions: await extensionsFor(spec),
  });
  return new X509Certificate(cert.toString("pem"));
}

async function extensionsFor(spec: CertSpec): Promise<x509.Extension[]> {
  const ext: x509.Extension[] = [
    new x509.BasicConstraintsExtension(!!spec.ca, spec.ca ? spec.pathLen : undefined, true),
    new x509.KeyUsagesExtension(
      spec.ca
        ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
        : x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(spec.publicKey),
  ];
  if (spec.issuer)
    ext.push(
      await x509.AuthorityKeyIdentifierExtension.create(
        new x509.X509Certificate(spec.issuer.cert.raw).publicKey,
      ),
    );
  const names = [
    ...(spec.uris ?? []).map((value) => ({ type: "url" as const, value })),
    ...(spec.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
  ];
  if (names.length) ext.push(new x509.SubjectAlternativeNameExtension(names, false));
  const eku = [
    ...(spec.serverAuth ? [x509.ExtendedKeyUsage.serverAuth] : []),
    ...(spec.clientAuth ? [x509.ExtendedKeyUsage.clientAuth] : []),
  ];
  if (eku.length) ext.push(new x509.ExtendedKeyUsageExtension(eku, false));
  return ext;
}

/** Issues a certificate for the public key of a PKCS#10 CSR after checking the CSR signature. */
export async function csrPublicKey(csrPem: string): Promise<{ key: CryptoKey; subject: string }> {
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  if (!(await csr.verify())) throw new Error("CSR signature is invalid");
  const key = await csr.publicKey.export(EC, ["verify"]);
  return { key, subject: csr.subject };
}

/** The DNS names in a CSR's subjectAltName extension. */
export function csrDnsNames(csrPem: string): string[] {
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  const san = csr.extensions.find(
    (e): e is x509.SubjectAlternativeNameExtension =>
      e instanceof x509.SubjectAlternativeNameExtension,
  );
  return san ? san.names.items.filter((n) => n.type === "dns").map((n) => n.value) : [];
}

/** Splits a PEM bundle into certificates, in file order. */
export function parseCerts(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** Joins certificates into one PEM bundle. */
export function toPem(certs: X509Certificate[]): string {
  return certs.map((c) => c.toString().trim() + "\n").join("");
}

/** Lowercase hex SHA-1 of a certificate's DER (what SPIRE puts in tpm_devid agent IDs). */
export function sha1Hex(cert: X509Certificate): string {
  return createHash("sha1").update(cert.raw).digest("hex");
}

/**
 * Verifies that `chain[0]` chains to one of `roots` through the rest of `chain`, checking
 * signatures, validity dates and CA flags. Returns the path found, or throws why not.
 */
export function verifyChain(chain: X509Certificate[], roots: X509Certificate[], at = new Date()) {
  if (!chain.length) throw new Error("no certificate presented");
  const path = [chain[0]!];
  for (;;) {
    const cert = path[path.length - 1]!;
    checkDates(cert, at);
    const root = roots.find((r) => cert.checkIssued(r) && cert.verify(r.publicKey));
    if (root) return (checkDates(root, at), [...path, root]);
    const next = chain.find((c) => !path.includes(c) && cert.checkIssued(c) && c.ca);
    if (!next || !cert.verify(next.publicKey))
      throw new Error(
        `certificate "${cert.subject.replace(/\n/g, ",")}" does not chain to a trusted root`,
      );
    path.push(next);
  }
}

function checkDates(cert: X509Certificate, at: Date) {
  if (new Date(cert.validFrom) > at || new Date(cert.validTo) < at)
    throw new Error(`certificate "${cert.subject.replace(/\n/g, ",")}" is not valid now`);
}

/** The URI SANs of a certificate. */
export function uriSans(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "")
    .split(", ")
    .filter((s) => s.startsWith("URI:"))
    .map((s) => s.slice(4));
}

/** The value of one attribute (e.g. CN) of a distinguished name as node prints it. */
export function dnAttr(dn: string, attr: string): string | undefined {
  const line = dn.split("\n").find((l) => l.startsWith(attr + "="));
  return line?.slice(attr.length + 1);
}

/** A PKCS#10 CSR (PEM) for a P-256 key pair, self-signed with it. */
export async function makeCsr(keys: CryptoKeyPair, subject = "CN=spire"): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    keys,
    signingAlgorithm: SIGN,
  });
  return csr.toString("pem");
}
