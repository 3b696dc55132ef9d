// ca.json of step-ca 0.28, decoded strictly: a JSON parser, then a JSON Schema of the keys
// step-ca's authority/config knows (unknown keys fail here; the real step-ca ignores them).
import { Ajv, type ErrorObject } from "ajv";
import { readFileSync } from "node:fs";
import { parseDuration } from "../common/hcl.js";

const str = { type: "string" } as const;
const bool = { type: "boolean" } as const;
const strs = { type: "array", items: str } as const;
const obj = (properties: Record<string, unknown>, required: string[] = []) => ({
  type: "object",
  properties,
  required,
  additionalProperties: false,
});

const claims = obj({
  minTLSCertDuration: str,
  maxTLSCertDuration: str,
  defaultTLSCertDuration: str,
  disableRenewal: bool,
  allowRenewalAfterExpiry: bool,
  disableSmallstepExtensions: bool,
  minUserSSHCertDuration: str,
  maxUserSSHCertDuration: str,
  defaultUserSSHCertDuration: str,
  minHostSSHCertDuration: str,
  maxHostSSHCertDuration: str,
  defaultHostSSHCertDuration: str,
  enableSSHCA: bool,
});

const jwk = obj(
  {
    kty: str,
    crv: str,
    x: str,
    y: str,
    n: str,
    e: str,
    kid: str,
    use: str,
    alg: str,
  },
  ["kty", "kid"],
);

const templateOptions = obj({ template: str, templateFile: str, templateData: { type: "object" } });

const jwkProvisioner = obj(
  {
    type: { enum: ["JWK", "jwk"] },
    name: str,
    key: jwk,
    encryptedKey: str,
    claims,
    options: obj({ x509: templateOptions, ssh: templateOptions }),
  },
  ["type", "name", "key"],
);

// Accepted in ca.json so a config with ACME validates; this stand-in serves no ACME.
const acmeProvisioner = obj(
  {
    type: { enum: ["ACME", "acme"] },
    name: str,
    forceCN: bool,
    requireEAB: bool,
    challenges: {
      type: "array",
      items: { enum: ["http-01", "dns-01", "tls-alpn-01", "device-attest-01"] },
    },
    attestationFormats: strs,
    attestationRoots: strs,
    termsOfService: str,
    website: str,
    caaIdentities: strs,
    claims,
    options: obj({ x509: templateOptions, ssh: templateOptions }),
  },
  ["type", "name"],
);

const provisioner = {
  type: "object",
  required: ["type"],
  properties: { type: { enum: ["JWK", "jwk", "ACME", "acme"] } },
  if: { properties: { type: { enum: ["ACME", "acme"] } } },
  then: acmeProvisioner,
  else: jwkProvisioner,
};

const schema = obj(
  {
    root: { anyOf: [str, strs] },
    federatedRoots: strs,
    crt: str,
    key: str,
    kms: obj({ type: str, uri: str, pin: str, managementKey: str, credentialsFile: str }, ["type"]),
    address: str,
    insecureAddress: str,
    dnsNames: strs,
    logger: obj({ format: { enum: ["text", "json", "common"] } }),
    db: obj({ type: str, dataSource: str, badgerFileLoadingMode: str }, ["type", "dataSource"]),
    authority: obj({
      provisioners: { type: "array", items: provisioner },
      claims,
      template: { type: "object" },
      policy: { type: "object" },
      enableAdmin: bool,
      backdate: str,
      disableIssuedAtCheck: bool,
    }),
    tls: obj({
      cipherSuites: strs,
      minVersion: { type: "number" },
      maxVersion: { type: "number" },
      renegotiation: bool,
    }),
    templates: { type: "object" },
    crl: obj({
      enabled: bool,
      generateOnRevoke: bool,
      cacheDuration: str,
      renewPeriod: str,
      idpURL: str,
    }),
    metricsAddress: str,
    commonName: str,
    password: str,
  },
  ["root", "crt", "key", "address", "dnsNames", "authority"],
);

export interface Claims {
  minTLSCertDuration?: string;
  maxTLSCertDuration?: string;
  defaultTLSCertDuration?: string;
  disableRenewal?: boolean;
}

export interface ProvisionerConfig {
  type: string;
  name: string;
  key: Record<string, string>;
  encryptedKey?: string;
  claims?: Claims;
}

export interface CaConfig {
  root: string | string[];
  crt: string;
  key: string;
  kms?: { type: string };
  address: string;
  dnsNames: string[];
  db?: { type: string; dataSource: string };
  authority: { provisioners?: ProvisionerConfig[]; claims?: Claims; backdate?: string };
  commonName?: string;
  password?: string;
}

/** A ca.json problem; the message names the file and the key. */
export class CaConfigError extends Error {}

const validate = new Ajv({ allErrors: false, strict: false }).compile(schema);

function where(e: ErrorObject): string {
  const path = e.instancePath
    .split("/")
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join("")
    .replace(/^\./, "");
  return path || "top level";
}

function explain(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  if (e.keyword === "additionalProperties") return `unknown key "${String(p.additionalProperty)}"`;
  if (e.keyword === "required") return `missing required key "${String(p.missingProperty)}"`;
  return e.message ?? e.keyword;
}

/** Global defaults of step-ca (authority/provisioner/claims.go). */
export const GLOBAL_CLAIMS = {
  minTLSCertDuration: "5m",
  maxTLSCertDuration: "24h",
  defaultTLSCertDuration: "24h",
};

/** The durations (ms) that apply to a provisioner: its claims over the global ones. */
export function durations(config: CaConfig, p: ProvisionerConfig) {
  const merged = { ...GLOBAL_CLAIMS, ...config.authority.claims, ...p.claims };
  return {
    min: parseDuration(merged.minTLSCertDuration),
    max: parseDuration(merged.maxTLSCertDuration),
    def: parseDuration(merged.defaultTLSCertDuration),
  };
}

/** Reads and checks ca.json; throws CaConfigError naming the file and key. */
export function loadCaConfig(file: string): CaConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new CaConfigError(`error reading ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CaConfigError(`error parsing ${file}: ${(e as Error).message}`);
  }
  if (!validate(json)) {
    const e = validate.errors![0]!;
    throw new CaConfigError(`${file}: ${where(e)}: ${explain(e)}`);
  }
  const config = json as unknown as CaConfig;
  const bad = (msg: string) => new CaConfigError(`${file}: ${msg}`);
  if (!config.address) throw bad("address cannot be empty");
  if (!config.dnsNames.length) throw bad("dnsNames cannot be empty");
  if (!config.crt) throw bad("crt cannot be empty");
  if (!config.key) throw bad("key cannot be empty");
  const names = new Set<string>();
  for (const [i, p] of (config.authority.provisioners ?? []).entries()) {
    const at = `authority.provisioners[${i}] "${p.name}"`;
    if (names.has(p.name)) throw bad(`${at}: duplicated provisioner name`);
    names.add(p.name);
    if (p.encryptedKey !== undefined && p.encryptedKey.split(".").length !== 5)
      throw bad(`${at}: encryptedKey is not a JWE in compact serialization`);
    for (const claimSet of [config.authority.claims, p.claims]) {
      for (const [k, v] of Object.entries(claimSet ?? {}))
        if (k.endsWith("Duration")) {
          try {
            parseDuration(String(v), `${at}.claims.${k}`);
          } catch (e) {
            throw bad((e as Error).message);
          }
        }
    }
    const d = durations(config, p);
    if (d.min > d.def || d.def > d.max)
      throw bad(
        `${at}: claims need minTLSCertDuration <= defaultTLSCertDuration <= maxTLSCertDuration`,
      );
  }
  return config;
}
