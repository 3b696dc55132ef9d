// Certificate issuing for the step-ca stand-in and the CSR/SAN handling step shares with it.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate } from "node:crypto";
import { isIP } from "node:net";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const CURVES: Record<string, { curve: string; hash: string }> = {
  prime256v1: { curve: "P-256", hash: "SHA-256" },
  secp384r1: { curve: "P-384", hash: "SHA-384" },
};

/** A CA signing key as WebCrypto keys plus the algorithm to sign with. */
export interface SigningKey {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  algorithm: { name: "ECDSA"; hash: string };
}

/** Loads an EC private key PEM (PKCS#8 or SEC1, maybe encrypted with `password`). */
export async function loadSigningKey(pem: string, password?: string): Promise<SigningKey> {
  const key = createPrivateKey(password === undefined ? pem : { key: pem, passphrase: password });
  const curve = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ""];
  if (key.asymmetricKeyType !== "ec" || !curve)
    throw new Error(`unsupported CA key type ${key.asymmetricKeyType} (EC P-256/P-384 only)`);
  const alg = { name: "ECDSA", namedCurve: curve.curve };
  const pkcs8 = key.export({ format: "der", type: "pkcs8" });
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return {
    privateKey: await webcrypto.subtle.importKey("pkcs8", pkcs8, alg, true, ["sign"]),
    publicKey: await webcrypto.subtle.importKey("spki", spki, alg, true, ["verify"]),
    algorithm: { name: "ECDSA", hash: curve.hash },
  };
}

/** A fresh P-256 key pair (for the CA's own TLS certificate). */
export async function newTlsKey(): Promise<{ keys: CryptoKeyPair; pem: string }> {
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { keys, pem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") };
}

/** SANs split by kind the way step does: IP, email (has @), URI (has a scheme), else DNS. */
export function classifySans(sans: string[]) {
  const out = {
    dns: [] as string[],
    ips: [] as string[],
    emails: [] as string[],
    uris: [] as string[],
  };
  for (const s of sans) {
    if (isIP(s)) out.ips.push(s);
    else if (/^[a-z][a-z0-9+.-]*:/i.test(s)) out.uris.push(s);
    else if (s.includes("@")) out.emails.push(s);
    else out.dns.push(s);
  }
  return out;
}

/** What a CSR asks for, after its signature has been checked. */
export interface ParsedCsr {
  csr: x509.Pkcs10CertificateRequest;
  commonName: string;
  sans: ReturnType<typeof classifySans>;
}

/** Parses a PEM CSR and verifies its self-signature. */
export async function parseCsr(pem: string): Promise<ParsedCsr> {
  const csr = new x509.Pkcs10CertificateRequest(pem);
  if (!(await csr.verify())) throw new Error("invalid csr: signature does not verify");
  const cn = csr.subjectName.getField("CN")[0] ?? "";
  const san = csr.extensions.find(
    (e): e is x509.SubjectAlternativeNameExtension =>
      e instanceof x509.SubjectAlternativeNameExtension,
  );
  const sans = {
    dns: [] as string[],
    ips: [] as string[],
    emails: [] as string[],
    uris: [] as string[],
  };
  for (const n of san?.names.items ?? []) {
    if (n.type === "dns") sans.dns.push(n.value);
    else if (n.type === "ip") sans.ips.push(n.value);
    else if (n.type === "email") sans.emails.push(n.value);
    else if (n.type === "url") sans.uris.push(n.value);
  }
  return { csr, commonName: cn, sans };
}

/** The CSR's SANs in one list, in step's order (DNS, IP, email, URI). */
export function allSans(p: ParsedCsr): string[] {
  return [...p.sans.dns, ...p.sans.ips, ...p.sans.emails, ...p.sans.uris];
}

export interface LeafSpec {
  subject: string;
  publicKey: x509.PublicKey | CryptoKey;
  sans: string[];
  notBefore: Date;
  notAfter: Date;
  issuer: X509Certificate;
  issuerKey: SigningKey;
  /** RSA leaf keys also get keyEncipherment, as step-ca's default leaf template does. */
  rsa?: boolean;
}

function serial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f || 1;
  return Buffer.from(bytes).toString("hex");
}

/** Issues a leaf as step-ca's default x509 template does (CN + SANs, server+client auth). */
export async function issueLeaf(spec: LeafSpec): Promise<X509Certificate> {
  const s = classifySans(spec.sans);
  const names = [
    ...s.dns.map((value) => ({ type: "dns" as const, value })),
    ...s.ips.map((value) => ({ type: "ip" as const, value })),
    ...s.emails.map((value) => ({ type: "email" as const, value })),
    ...s.uris.map((value) => ({ type: "url" as const, value })),
  ];
  const usage = spec.rsa
    ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
    : x509.KeyUsageFlags.digitalSignature;
  const extensions: x509.Extension[] = [
    new x509.KeyUsagesExtension(usage, true),
    new x509.ExtendedKeyUsageExtension(
      [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(spec.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(spec.issuerKey.publicKey),
  ];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: spec.subject ? [{ CN: [spec.subject] }] : [],
    issuer: new x509.X509Certificate(spec.issuer.raw).subjectName,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    signingAlgorithm: spec.issuerKey.algorithm,
    publicKey: spec.publicKey,
    signingKey: spec.issuerKey.privateKey,
    extensions,
  });
  return new X509Certificate(cert.toString("pem"));
}

/** Splits a PEM bundle into certificates. */
export function pemCerts(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

export function certPem(c: X509Certificate): string {
  return c.toString().trim() + "\n";
}
