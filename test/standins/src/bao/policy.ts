// ACL policies: HCL v1 `path "..." { capabilities = [...] }`, parsed and checked on write, and
// used to authorise requests of non-root tokens (exact paths, `*` suffix globs, `+` segments).
import { parseHcl } from "../common/hcl.js";

const CAPABILITIES = [
  "create",
  "read",
  "update",
  "patch",
  "delete",
  "list",
  "scan",
  "sudo",
  "deny",
];
const PATH_KEYS = [
  "capabilities",
  "allowed_parameters",
  "denied_parameters",
  "required_parameters",
  "min_wrapping_ttl",
  "max_wrapping_ttl",
];

export interface Rule {
  path: string;
  capabilities: string[];
}

/** Parses policy text; throws with the reason OpenBao would give. */
export function parsePolicy(text: string): Rule[] {
  let root: Record<string, unknown>;
  try {
    root = parseHcl(text);
  } catch (e) {
    throw new Error(`failed to parse policy: ${(e as Error).message}`);
  }
  const rules: Rule[] = [];
  for (const [key, value] of Object.entries(root)) {
    if (key !== "path") throw new Error(`failed to parse policy: invalid key "${key}" on line 1`);
    for (const item of value as Record<string, unknown>[]) {
      for (const [path, bodies] of Object.entries(item)) {
        for (const body of bodies as Record<string, unknown>[]) {
          for (const k of Object.keys(body))
            if (!PATH_KEYS.includes(k))
              throw new Error(`failed to parse policy: path "${path}": invalid key "${k}"`);
          const caps = body.capabilities;
          if (!Array.isArray(caps) || !caps.every((c) => typeof c === "string"))
            throw new Error(
              `failed to parse policy: path "${path}": capabilities must be a list of strings`,
            );
          for (const c of caps as string[])
            if (!CAPABILITIES.includes(c))
              throw new Error(`failed to parse policy: path "${path}": invalid capability "${c}"`);
          rules.push({ path, capabilities: caps as string[] });
        }
      }
    }
  }
  return rules;
}

/** The built-in `default` policy's relevant part: a token may look itself up and renew. */
export const DEFAULT_POLICY = `path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
`;

function matches(pattern: string, path: string): boolean {
  const glob = pattern.endsWith("*");
  const p = glob ? pattern.slice(0, -1) : pattern;
  const ps = p.split("/");
  const xs = path.split("/");
  for (let i = 0; i < ps.length; i++) {
    const seg = ps[i]!;
    if (i === ps.length - 1 && glob) return (xs[i] ?? "").startsWith(seg) && xs.length >= ps.length;
    if (seg !== "+" && seg !== xs[i]) return false;
  }
  return glob || ps.length === xs.length;
}

/** Whether `policies` grant `capability` on `path` (deny wins; longest match otherwise). */
export function allowed(rules: Rule[], path: string, capability: string): boolean {
  const hits = rules.filter((r) => matches(r.path, path));
  if (hits.some((r) => r.capabilities.includes("deny"))) return false;
  return hits.some((r) => r.capabilities.includes(capability));
}
