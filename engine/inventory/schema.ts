/** JSON Schema of the inventory file, checked with ajv before anything else reads it. */

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

const vars = { type: "object", propertyNames: { pattern: "^[A-Za-z_][A-Za-z0-9_]*$" } } as const;

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
export function keyPath(keys: string[]): string {
  return keys
    .map((key, i) =>
      /^\d+$/.test(key)
        ? `[${key}]`
        : /^[A-Za-z_$][\w$-]*$/.test(key)
          ? i === 0
            ? key
            : `.${key}`
          : `['${key.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}']`,
    )
    .join("");
}
