// HCL v1 parsing (HashiCorp's own Go parser, compiled to JS) and strict decoding against a schema.
// SPIRE 1.14 and OpenBao 2.5 both read their configs with github.com/hashicorp/hcl v1, which is
// what js-hcl-parser wraps; HCL2 parsers reject v1 forms such as `a "b" { c {} }` on one line.
import hclParser from "js-hcl-parser";

/** A value's expected kind in a config file. */
export type Field =
  { kind: "string" | "int" | "bool" | "duration" | "strings" | "number" } | BlockSchema;

/** A block: its fields, which are required, and for labelled blocks a schema per label. */
export interface BlockSchema {
  kind: "block";
  fields: Record<string, Field>;
  required?: string[];
  /** The block may appear more than once (decoded as an array). */
  multiple?: boolean;
  /** One label; the body's schema per accepted label. */
  byLabel?: Record<string, BlockSchema>;
}

/** A config error with the dotted path of the offending key (and the key, to find its line). */
export class ConfigError extends Error {
  constructor(
    message: string,
    public key?: string,
  ) {
    super(message);
  }
}

/** The 1-based line of the first line of `text` that sets or opens `key`, if any. */
export function lineOf(text: string, key: string): number | undefined {
  const re = new RegExp(`^\\s*"?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"?\\s*(=|\\{|")`);
  const index = text.split("\n").findIndex((l) => re.test(l));
  return index < 0 ? undefined : index + 1;
}

/** Parses HCL v1 text into the generic JSON shape HCL's own JSON printer uses. */
export function parseHcl(text: string): Record<string, unknown> {
  try {
    return JSON.parse((hclParser as { parse(s: string): string }).parse(text)) as Record<
      string,
      unknown
    >;
  } catch (e) {
    const msg = String((e as Error).message ?? e).replace(/^unable to parse JSON: /, "");
    throw new ConfigError(`HCL syntax error: ${msg}`);
  }
}

/** A decoded labelled block. */
export interface Labelled {
  label: string;
  body: Record<string, unknown>;
}

/** Decodes a parsed body against `schema`, rejecting unknown and missing keys. */
export function decodeBody(
  body: unknown,
  schema: BlockSchema,
  path: string,
): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new ConfigError(`${path}: expected a block`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    const field = schema.fields[key];
    if (!field) throw new ConfigError(`${path || "top level"}: unknown key "${key}"`, key);
    out[key] = decodeField(value, field, join(path, key));
  }
  for (const key of schema.required ?? [])
    if (!(key in out))
      throw new ConfigError(
        `${path || "top level"}: missing required key "${key}"`,
        path.split(".").at(-1)?.replace(/ .*/, ""),
      );
  return out;
}

function join(path: string, key: string) {
  return path ? `${path}.${key}` : key;
}

function decodeField(value: unknown, field: Field, path: string): unknown {
  if (field.kind === "block") return decodeBlock(value, field, path);
  if (isBlockList(value)) throw new ConfigError(`${path}: expected a ${field.kind}, found a block`);
  return decodeScalar(value, field.kind, path);
}

function isBlockList(v: unknown): v is Record<string, unknown>[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "object" && x !== null);
}

function decodeBlock(value: unknown, schema: BlockSchema, path: string): unknown {
  if (!isBlockList(value)) throw new ConfigError(`${path}: expected a block, found a value`);
  if (!schema.multiple && value.length > 1) throw new ConfigError(`${path}: block given twice`);
  const items = schema.byLabel
    ? value.flatMap((item) => decodeLabelled(item, schema.byLabel!, path))
    : value.map((item) => decodeBody(item, schema, path));
  if (!schema.multiple && items.length > 1) throw new ConfigError(`${path}: block given twice`);
  return schema.multiple ? items : items[0];
}

function decodeLabelled(
  item: Record<string, unknown>,
  byLabel: Record<string, BlockSchema>,
  path: string,
) {
  return Object.entries(item).flatMap(([label, bodies]): Labelled[] => {
    const schema = byLabel[label];
    const where = `${path} "${label}"`;
    if (!schema)
      throw new ConfigError(`${where}: unknown; accepted: ${Object.keys(byLabel).join(", ")}`);
    if (!isBlockList(bodies)) throw new ConfigError(`${where}: expected a block body`);
    return bodies.map((b) => ({ label, body: decodeBody(b, schema, where) }));
  });
}

function decodeScalar(value: unknown, kind: Exclude<Field["kind"], "block">, path: string) {
  const bad = () => new ConfigError(`${path}: expected ${kind}, got ${JSON.stringify(value)}`);
  switch (kind) {
    case "string":
      if (typeof value !== "string") throw bad();
      return value;
    case "duration":
      if (typeof value !== "string") throw bad();
      parseDuration(value, path);
      return value;
    case "int":
    case "number": {
      const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
      if (typeof n !== "number" || (kind === "int" && !Number.isInteger(n))) throw bad();
      return n;
    }
    case "bool":
      if (typeof value !== "boolean") throw bad();
      return value;
    case "strings":
      if (!Array.isArray(value) || !value.every((s) => typeof s === "string")) throw bad();
      return value;
  }
}

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1e3,
  m: 6e4,
  h: 36e5,
};

/** Parses a Go duration ("90s", "1h30m", "2160h") into milliseconds; Go has no "d" unit. */
export function parseDuration(text: string, path = "duration"): number {
  const parts = text.match(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g);
  if (text === "0") return 0;
  if (!parts || parts.join("") !== text)
    throw new ConfigError(`${path}: invalid duration "${text}" (Go syntax: 90s, 15m, 2160h)`);
  return parts.reduce((ms, p) => {
    const [, n, u] = /^([\d.]+)(\D+)$/.exec(p)!;
    return ms + Number(n) * UNITS[u!]!;
  }, 0);
}

/** A block schema whose every field is optional unless listed in `required`. */
export function block(fields: Record<string, Field>, required: string[] = []): BlockSchema {
  return { kind: "block", fields, required };
}

/** Shorthands for scalar fields. */
export const S = { kind: "string" } as const;
export const I = { kind: "int" } as const;
export const B = { kind: "bool" } as const;
export const D = { kind: "duration" } as const;
export const L = { kind: "strings" } as const;
