/** JSON Schema of the inventory file, checked with ajv before anything else reads it. */

import { Ajv, type ErrorObject } from "ajv";

const connectionProperties = {
  address: { type: "string", minLength: 1, description: "DNS name or IP address to connect to" },
  port: { type: "integer", minimum: 1, maximum: 65535 },
  user: { type: "string", minLength: 1 },
  key: { type: "string", minLength: 1, description: "private key file" },
  agent: { type: "boolean", description: "also offer the keys of the agent at SSH_AUTH_SOCK" },
  knownHosts: { type: "string", minLength: 1 },
  connectTimeout: { type: "number", exclusiveMinimum: 0, description: "seconds" },
  connection: { enum: ["ssh", "local"] },
  become: { type: "boolean" },
  becomeUser: { type: "string", minLength: 1 },
  becomePasswordEnv: { type: "string", pattern: "^[A-Za-z_][A-Za-z0-9_]*$" },
} as const;

const vars = {
  type: ["object", "null"],
  propertyNames: { pattern: "^[A-Za-z_][A-Za-z0-9_]*$" },
} as const;

export const inventorySchema = {
  $id: "omens:inventory",
  type: "object",
  required: ["all"],
  additionalProperties: false,
  properties: { all: { $ref: "#/$defs/group" } },
  $defs: {
    host: {
      type: ["object", "null"],
      additionalProperties: false,
      properties: { ...connectionProperties, vars },
    },
    group: {
      type: ["object", "null"],
      additionalProperties: false,
      properties: {
        ...connectionProperties,
        vars,
        hosts: {
          type: ["object", "null"],
          propertyNames: { pattern: "^[A-Za-z0-9_][A-Za-z0-9_.-]*$" },
          additionalProperties: { $ref: "#/$defs/host" },
        },
        children: {
          type: ["object", "null"],
          propertyNames: { pattern: "^[A-Za-z_][A-Za-z0-9_-]*$" },
          additionalProperties: { $ref: "#/$defs/group" },
        },
      },
    },
  },
} as const;

/** Keys that configure the connection rather than being variables. */
export const CONNECTION_KEYS = Object.keys(
  connectionProperties,
) as (keyof typeof connectionProperties)[];

/**
 * The keys a schema error's `instancePath` names. Ajv writes a JSON Pointer (`/all/hosts/a~1b`):
 * `~1` stands for `/` and `~0` for `~`, and nothing is URI-encoded (a `%` in a name is a `%`).
 */
export function pointerKeys(instancePath: string): string[] {
  return instancePath
    .split("/")
    .slice(1)
    .map((segment) => segment.replaceAll("~1", "/").replaceAll("~0", "~"));
}

/**
 * A path of keys as a reader would write it: `a.b` for plain keys, `a[0]` for list positions
 * and `a['spire.funlab.casa']` for a key that holds a dot or another character that would make
 * the dotted form ambiguous.
 */
export function keyPath(keys: string[], root?: unknown): string {
  let at = root;
  return keys
    .map((key, i) => {
      // With the data at hand a list position is told from a map key that looks like one.
      const index = root === undefined ? /^\d+$/.test(key) : Array.isArray(at);
      at = at !== null && typeof at === "object" ? (at as Record<string, unknown>)[key] : undefined;
      if (index) return `[${key}]`;
      if (/^[A-Za-z_$][\w$-]*$/.test(key)) return i === 0 ? key : `.${key}`;
      // JSON's escapes keep control characters, quotes and backslashes on one readable line.
      return `['${JSON.stringify(key).slice(1, -1).replaceAll("'", "\\'")}']`;
    })
    .join("");
}

/** One schema error of an inventory document: the keys it is about and what is wrong. */
export interface SchemaProblem {
  path: string[];
  /** `"all.hosts.auth.port" must be integer` */
  message: string;
}

// The schema is fixed and known good: checking it against the meta-schema on every start costs
// more than the whole validation (about 200 ms).
const validate = new Ajv({ allErrors: true, strict: false, validateSchema: false }).compile(
  inventorySchema,
);

/**
 * Every schema error of an inventory document, one per key at fault, in the schema's order;
 * empty when the document is valid. Runs report the first of them, lint all.
 */
export function inventorySchemaProblems(data: unknown): SchemaProblem[] {
  if (validate(data)) return [];
  const errors = specific(validate.errors ?? []);
  const seen = new Set<string>();
  return errors.flatMap((error) => {
    const path = errorPath(error);
    const subject = path.length > 0 ? `"${keyPath(path, data)}"` : "the document";
    const message = `${subject} ${describe(error)}`;
    if (seen.has(message)) return [];
    seen.add(message);
    return [{ path, message }];
  });
}

/**
 * Drops the errors of a schema branch when a deeper error explains the same value. Depth is
 * that of the key each error is about, so an unknown key beside a wrongly typed one is kept.
 */
function specific(errors: ErrorObject[]): ErrorObject[] {
  const paths = new Map(errors.map((e) => [e, errorPath(e)]));
  const under = (inner: string[], outer: string[]) =>
    inner.length > outer.length && outer.every((key, i) => inner[i] === key);
  // An error about a key (its name, or that it is unknown) stands whatever its value holds.
  const aboutKey = (e: ErrorObject) =>
    ["additionalProperties", "propertyNames"].includes(e.keyword) || e.propertyName !== undefined;
  return errors.filter(
    (e) =>
      e.keyword !== "if" &&
      (aboutKey(e) ||
        !errors.some((o) => o !== e && under(paths.get(o) ?? [], paths.get(e) ?? []))),
  );
}

function errorPath(error: ErrorObject): string[] {
  const path = pointerKeys(error.instancePath);
  const params = error.params as { additionalProperty?: string; propertyName?: string };
  // A key's own pattern error carries the key on the error, its propertyNames error in params.
  const key = params.propertyName ?? error.propertyName;
  if (params.additionalProperty !== undefined) path.push(params.additionalProperty);
  if (key !== undefined) path.push(key);
  return path;
}

const HOST_KEYS = ["vars", ...CONNECTION_KEYS];
const GROUP_KEYS = ["hosts", "children", ...HOST_KEYS];

function describe(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "additionalProperties": {
      // The document alternates kind and name below `all`: all/children/web/hosts/web1.
      const at = pointerKeys(error.instancePath);
      const known =
        at.length === 0
          ? ["all"]
          : at.at(-2) === "hosts" && at.length % 2 === 1
            ? HOST_KEYS
            : GROUP_KEYS;
      return `is not a known setting (expected one of: ${known.join(", ")})`;
    }
    case "type":
      return `must be ${String(params.type).split(",").join(" or ")}`;
    case "enum":
      return `must be one of ${JSON.stringify(params.allowedValues)}`;
    case "propertyNames":
    case "pattern":
      return "is not a valid name";
    default:
      return error.message ?? "is invalid";
  }
}
