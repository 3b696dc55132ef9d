// The jwt auth method: config (the JWKS is fetched and checked at write time), roles, login.
import * as jose from "jose";
import https from "node:https";
import { isIP } from "node:net";
import { parseDuration } from "../common/hcl.js";

/** A request error OpenBao answers with 400 and this message. */
export class BadRequest extends Error {}

const DEFAULT_ALGS = [
  "RS256",
  "RS384",
  "RS512",
  "ES256",
  "ES384",
  "ES512",
  "PS256",
  "PS384",
  "PS512",
  "EdDSA",
];

const CONFIG_FIELDS = [
  "jwks_url",
  "jwks_ca_pem",
  "oidc_discovery_url",
  "oidc_discovery_ca_pem",
  "oidc_client_id",
  "oidc_client_secret",
  "jwt_validation_pubkeys",
  "jwt_supported_algs",
  "bound_issuer",
  "default_role",
  "skip_jwks_validation",
  "override_allowed_server_names",
  "namespace_in_state",
];

const ROLE_FIELDS = [
  "role_type",
  "bound_audiences",
  "bound_subject",
  "bound_claims",
  "bound_claims_type",
  "user_claim",
  "user_claim_json_pointer",
  "groups_claim",
  "claim_mappings",
  "clock_skew_leeway",
  "expiration_leeway",
  "not_before_leeway",
  "allowed_redirect_uris",
  "oidc_scopes",
  "verbose_oidc_logging",
  "max_age",
  "token_policies",
  "policies",
  "token_ttl",
  "ttl",
  "token_max_ttl",
  "max_ttl",
  "token_explicit_max_ttl",
  "token_type",
  "token_bound_cidrs",
  "token_no_default_policy",
  "token_num_uses",
  "token_period",
];

/** Field names a request carried that the endpoint does not know (reported as a warning). */
export function unknownFields(body: Record<string, unknown>, kind: "config" | "role"): string[] {
  const known = kind === "config" ? CONFIG_FIELDS : ROLE_FIELDS;
  return Object.keys(body).filter((k) => !known.includes(k));
}

function list(v: unknown): string[] {
  if (v === undefined || v === null || v === "") return [];
  if (Array.isArray(v))
    return v
      .flatMap((x) => String(x).split(","))
      .map((s) => s.trim())
      .filter(Boolean);
  return String(v)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function str(v: unknown): string {
  return v === undefined || v === null ? "" : String(v);
}

function bool(v: unknown, name: string): boolean {
  if (v === undefined || v === "") return false;
  if (v === true || v === "true" || v === "1") return true;
  if (v === false || v === "false" || v === "0") return false;
  throw new BadRequest(`invalid value for "${name}": ${JSON.stringify(v)} is not a boolean`);
}

/** Seconds from a number, "3600", or a Go duration such as "1h". */
export function seconds(v: unknown, name: string): number {
  if (v === undefined || v === "") return 0;
  if (typeof v === "number") return v;
  const s = String(v);
  if (/^\d+$/.test(s)) return Number(s);
  try {
    return Math.round(parseDuration(s, name) / 1000);
  } catch {
    throw new BadRequest(`invalid value for "${name}": ${JSON.stringify(v)} is not a duration`);
  }
}

// ------------------------------------------------------------------ JWKS
function get(url: string, caPem: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = https.get(
      u,
      {
        ...(caPem ? { ca: caPem } : {}),
        ...(isIP(u.hostname) ? {} : { servername: u.hostname }),
        timeout: 10_000,
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(text)
            : reject(new Error(`oidc: get keys failed: ${res.statusCode} ${text.slice(0, 200)}`)),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => reject(new Error(`Get "${url}": ${e.message}`)));
  });
}

/** Fetches and parses a JWKS, verifying TLS against caPem (system roots when unset). */
export async function fetchJwks(
  url: string,
  caPem: string | undefined,
): Promise<jose.JSONWebKeySet> {
  const text = await get(url, caPem);
  let jwks: jose.JSONWebKeySet;
  try {
    jwks = JSON.parse(text) as jose.JSONWebKeySet;
  } catch (e) {
    throw new Error(`oidc: failed to decode keys: ${(e as Error).message}`);
  }
  if (!Array.isArray(jwks.keys)) throw new Error('oidc: failed to decode keys: no "keys" array');
  return jwks;
}

// ------------------------------------------------------------------ config
export async function writeConfig(body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const config = {
    jwks_url: str(body.jwks_url),
    jwks_ca_pem: str(body.jwks_ca_pem),
    oidc_discovery_url: str(body.oidc_discovery_url),
    oidc_discovery_ca_pem: str(body.oidc_discovery_ca_pem),
    oidc_client_id: str(body.oidc_client_id),
    jwt_validation_pubkeys: list(body.jwt_validation_pubkeys),
    jwt_supported_algs: list(body.jwt_supported_algs),
    bound_issuer: str(body.bound_issuer),
    default_role: str(body.default_role),
    skip_jwks_validation: bool(body.skip_jwks_validation, "skip_jwks_validation"),
    namespace_in_state: true,
    provider_config: {},
  };
  const set = [
    config.jwks_url,
    config.oidc_discovery_url,
    config.jwt_validation_pubkeys.length ? "x" : "",
  ];
  if (set.filter(Boolean).length !== 1)
    throw new BadRequest(
      "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set",
    );
  if (config.oidc_discovery_url)
    throw new BadRequest("oidc_discovery_url is not supported by this lab stand-in");
  if (config.jwt_validation_pubkeys.length)
    throw new BadRequest("jwt_validation_pubkeys is not supported by this lab stand-in");
  for (const alg of config.jwt_supported_algs)
    if (!DEFAULT_ALGS.includes(alg)) throw new BadRequest(`invalid jwt_supported_algs: ${alg}`);
  if (config.jwks_ca_pem && !/-----BEGIN CERTIFICATE-----/.test(config.jwks_ca_pem))
    throw new BadRequest("could not parse 'jwks_ca_pem': no PEM certificate found");
  try {
    new URL(config.jwks_url);
  } catch {
    throw new BadRequest(`error checking jwks URL: invalid URL ${JSON.stringify(config.jwks_url)}`);
  }
  if (!config.skip_jwks_validation) {
    try {
      await fetchJwks(config.jwks_url, config.jwks_ca_pem || undefined);
    } catch (e) {
      throw new BadRequest(`error checking jwks URL: ${(e as Error).message}`);
    }
  }
  return config;
}

// ------------------------------------------------------------------ roles
export function writeRole(
  existing: Record<string, unknown> | undefined,
  body: Record<string, unknown>,
): Record<string, unknown> {
  const r: Record<string, unknown> = existing
    ? { ...existing }
    : {
        role_type: "oidc",
        bound_audiences: [],
        bound_subject: "",
        bound_claims: null,
        bound_claims_type: "string",
        user_claim: "",
        user_claim_json_pointer: false,
        groups_claim: "",
        claim_mappings: null,
        clock_skew_leeway: 60,
        expiration_leeway: 150,
        not_before_leeway: 150,
        allowed_redirect_uris: [],
        oidc_scopes: [],
        verbose_oidc_logging: false,
        max_age: 0,
        token_policies: [],
        token_ttl: 0,
        token_max_ttl: 0,
        token_explicit_max_ttl: 0,
        token_type: "default",
        token_bound_cidrs: [],
        token_no_default_policy: false,
        token_num_uses: 0,
        token_period: 0,
      };
  const has = (k: string) => body[k] !== undefined;
  if (has("role_type")) r.role_type = str(body.role_type);
  if (r.role_type !== "jwt" && r.role_type !== "oidc")
    throw new BadRequest(`invalid 'role_type': ${String(r.role_type)}`);
  for (const k of ["bound_audiences", "allowed_redirect_uris", "oidc_scopes", "token_bound_cidrs"])
    if (has(k)) r[k] = list(body[k]);
  if (has("policies") && !has("token_policies")) r.token_policies = list(body.policies);
  if (has("token_policies")) r.token_policies = list(body.token_policies);
  for (const k of [
    "bound_subject",
    "user_claim",
    "groups_claim",
    "token_type",
    "bound_claims_type",
  ])
    if (has(k)) r[k] = str(body[k]);
  for (const k of [
    "clock_skew_leeway",
    "expiration_leeway",
    "not_before_leeway",
    "max_age",
    "token_max_ttl",
    "token_explicit_max_ttl",
    "token_period",
  ])
    if (has(k)) r[k] = seconds(body[k], k);
  if (has("ttl") && !has("token_ttl")) r.token_ttl = seconds(body.ttl, "ttl");
  if (has("token_ttl")) r.token_ttl = seconds(body.token_ttl, "token_ttl");
  if (has("max_ttl") && !has("token_max_ttl")) r.token_max_ttl = seconds(body.max_ttl, "max_ttl");
  for (const k of ["user_claim_json_pointer", "verbose_oidc_logging", "token_no_default_policy"])
    if (has(k)) r[k] = bool(body[k], k);
  if (has("token_num_uses")) r.token_num_uses = Number(body.token_num_uses);
  if (has("bound_claims")) {
    const v = body.bound_claims;
    try {
      r.bound_claims = typeof v === "string" ? (JSON.parse(v) as unknown) : v;
    } catch {
      throw new BadRequest("bound_claims must be a JSON object");
    }
  }
  if (has("claim_mappings")) r.claim_mappings = body.claim_mappings;
  r.policies = r.token_policies;
  r.ttl = r.token_ttl;
  r.max_ttl = r.token_max_ttl;
  if (!r.user_claim) throw new BadRequest("a user claim must be defined on the role");
  if (r.role_type === "oidc" && !(r.allowed_redirect_uris as string[]).length)
    throw new BadRequest(
      "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.",
    );
  if (
    r.role_type === "jwt" &&
    !(r.bound_audiences as string[]).length &&
    !r.bound_subject &&
    !r.bound_claims &&
    !(r.token_bound_cidrs as string[]).length
  )
    throw new BadRequest("must have at least one bound constraint when creating/updating a role");
  return r;
}

// ------------------------------------------------------------------ login
export interface LoginResult {
  policies: string[];
  ttl: number;
  metadata: Record<string, string>;
  displayName: string;
}

export async function login(
  config: Record<string, unknown> | undefined,
  roles: Record<string, Record<string, unknown>>,
  body: Record<string, unknown>,
): Promise<LoginResult> {
  if (!config) throw new BadRequest("could not load configuration");
  const roleName = str(body.role) || str(config.default_role);
  if (!roleName) throw new BadRequest("missing role");
  const role = roles[roleName];
  if (!role) throw new BadRequest(`role "${roleName}" could not be found`);
  if (role.role_type === "oidc") throw new BadRequest("role with oidc role_type is not allowed");
  const token = str(body.jwt);
  if (!token) throw new BadRequest("missing token");
  let header: jose.ProtectedHeaderParameters;
  try {
    header = jose.decodeProtectedHeader(token);
  } catch {
    throw new BadRequest("error validating token: malformed JWT");
  }
  const algs = (config.jwt_supported_algs as string[]).length
    ? (config.jwt_supported_algs as string[])
    : DEFAULT_ALGS;
  if (!header.alg || !algs.includes(header.alg))
    throw new BadRequest(
      `error validating token: unsupported signing algorithm "${String(header.alg)}"`,
    );
  let jwks: jose.JSONWebKeySet;
  try {
    jwks = await fetchJwks(str(config.jwks_url), str(config.jwks_ca_pem) || undefined);
  } catch (e) {
    throw new BadRequest(`error fetching jwks: ${(e as Error).message}`);
  }
  const candidates = jwks.keys.filter((k) => !header.kid || k.kid === header.kid);
  let payload: Uint8Array | undefined;
  for (const jwk of candidates) {
    try {
      const key = await jose.importJWK(jwk, header.alg);
      ({ payload } = await jose.compactVerify(token, key, { algorithms: [header.alg] }));
      break;
    } catch {
      // not this key
    }
  }
  if (!payload) throw new BadRequest("error validating token: failed to verify id token signature");
  const claims = JSON.parse(new TextDecoder().decode(payload)) as jose.JWTPayload &
    Record<string, unknown>;
  const now = Date.now() / 1000;
  const skew = role.clock_skew_leeway as number;
  if (
    typeof claims.exp === "number" &&
    now > claims.exp + (role.expiration_leeway as number) + skew
  )
    throw new BadRequest("error validating claims: validation failed, token is expired (exp)");
  if (
    typeof claims.nbf === "number" &&
    now < claims.nbf - (role.not_before_leeway as number) - skew
  )
    throw new BadRequest("error validating claims: validation failed, token not valid yet (nbf)");
  if (typeof claims.iat === "number" && now < claims.iat - skew)
    throw new BadRequest(
      "error validating claims: validation failed, token issued in the future (iat)",
    );
  if (config.bound_issuer && claims.iss !== config.bound_issuer)
    throw new BadRequest("error validating claims: validation failed, invalid issuer claim (iss)");
  const aud = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  const bound = role.bound_audiences as string[];
  if (bound.length) {
    if (!aud.some((a) => bound.includes(a)))
      throw new BadRequest("error validating claims: aud claim does not match any bound audience");
  } else if (aud.length) {
    throw new BadRequest("audience claim found in JWT but no audiences bound to the role");
  }
  if (role.bound_subject && claims.sub !== role.bound_subject)
    throw new BadRequest("sub claim does not match bound subject");
  const bc = role.bound_claims as Record<string, unknown> | null;
  for (const [k, want] of Object.entries(bc ?? {})) {
    const wants = Array.isArray(want) ? want.map(String) : [String(want)];
    const have = claims[k];
    const haves = Array.isArray(have) ? have.map(String) : have === undefined ? [] : [String(have)];
    if (!haves.some((h) => wants.includes(h)))
      throw new BadRequest(`claim "${k}" does not match any associated bound claim values`);
  }
  const userClaim = str(role.user_claim);
  if (claims[userClaim] === undefined)
    throw new BadRequest(`claim "${userClaim}" not found in token`);
  const policies = [...(role.token_policies as string[])];
  if (!role.token_no_default_policy && !policies.includes("default")) policies.push("default");
  return {
    policies: policies.sort(),
    ttl: (role.token_ttl as number) || 768 * 3600,
    metadata: { role: roleName },
    displayName: `jwt-${String(claims[userClaim])}`,
  };
}
