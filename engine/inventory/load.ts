import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { homedir } from "node:os";
import {
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Document,
  type Node,
  type Pair,
  type YAMLMap,
} from "yaml";
import { inputError, type Where } from "../errors.js";
import { CONNECTION_KEYS, inventorySchemaProblems, type SchemaProblem } from "./schema.js";

/** How to reach a host, after group settings have been inherited. */
export interface ConnectionSpec {
  kind: "ssh" | "local";
  address: string;
  port: number;
  user: string;
  key?: string;
  agent: boolean;
  knownHosts: string;
  connectTimeoutMs: number;
  become: boolean;
  becomeUser: string;
  becomePasswordEnv?: string;
}

/** One inventory host with its merged variables and where each came from. */
export interface InventoryHost {
  name: string;
  groups: string[];
  vars: Record<string, unknown>;
  /**
   * For each variable: every group or host that sets it ("group all", "host auth") with the
   * YAML path it is written at, in order; the last one wins. {@link variableSource} turns the
   * winner into "group agents (inventory.yaml:6)".
   */
  varDefinitions: Record<string, VarOrigin[]>;
  connection: ConnectionSpec;
  where: Where;
}

/** Where one value of a variable is set: `group all` and its YAML path. */
export interface VarOrigin {
  layer: string;
  path: string[];
}

export interface Inventory {
  file: string;
  /** Hosts in the order they first appear in the file. */
  hosts: Map<string, InventoryHost>;
  /** Group name to its member host names (including those of child groups). */
  groups: Map<string, string[]>;
}

type RawSettings = Record<string, unknown> & { vars?: Record<string, unknown> };
interface RawGroup extends RawSettings {
  hosts?: Record<string, RawSettings | null> | null;
  children?: Record<string, RawGroup | null> | null;
}

/** Loads, validates and flattens an inventory YAML file. */
export function loadInventory(file: string): Inventory {
  const text = readText(file);
  if (isEmptyInventory(text))
    throw inputError(
      "inventory",
      "INVENTORY_EMPTY",
      "the inventory is empty: it needs an 'all' group with hosts",
      { file },
    );
  const { doc, lines } = parseInventoryText(text);
  reportYamlErrors(doc, lines, file, text);
  parsed.set(file, { doc, lines });
  const data = inventoryData(doc, lines, file);
  const problems = inventorySchemaProblems(data);
  if (problems.length > 0) throw schemaError(problems, doc, lines, file);
  return flatten(data as { all: RawGroup }, file, (path) => position(doc, lines, path, file));
}

/** Blank or only comments: no YAML document at all, a different fault from a wrong one. */
export function isEmptyInventory(text: string): boolean {
  return text.split("\n").every((line) => /^\s*(#.*)?$/.test(line));
}

const PLAIN_TAGS = new Set(
  ["str", "int", "float", "bool", "null", "map", "seq"].map((t) => `tag:yaml.org,2002:${t}`),
);
/** How many alias uses one document may expand to; past it, it is taken for an alias bomb. */
const MAX_ALIAS_COUNT = 10_000;

/**
 * An inventory document as plain data: maps, lists and plain values only. Refuses, with the
 * line, what would otherwise change or vanish when the YAML becomes data: a tag such as `!!omap`
 * or `!!binary`, a key that is not a plain value, two keys that read as one (`1` and `"1"`), an
 * alias with no anchor or inside what it names, a merge key given something other than maps.
 */
export function inventoryData(doc: Document, lines: LineCounter, file: string): unknown {
  const at = (node: Node | undefined): Where => {
    const offset = node?.range?.[0];
    if (offset === undefined) return { file };
    const pos = lines.linePos(offset);
    return { file, line: pos.line, column: pos.col };
  };
  const refuse = (node: Node | undefined, message: string): never => {
    throw inputError("inventory", "INVENTORY_YAML", message, at(node));
  };
  visit(doc, {
    Node(_, node, path) {
      if (node.tag && !PLAIN_TAGS.has(node.tag))
        refuse(
          node,
          `the YAML tag ${shortTag(node.tag)} is not read in an inventory: use plain maps, lists and values`,
        );
      if (isAlias(node)) {
        const target = node.resolve(doc);
        if (!target) refuse(node, `alias *${node.source} has no anchor &${node.source} before it`);
        if ((path as readonly unknown[]).includes(target))
          refuse(node, `alias *${node.source} is inside the value it names`);
      }
      if (isMap(node)) checkKeys(node, { doc, at, refuse });
    },
  });
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown;
  } catch (error) {
    return refuse(doc.contents ?? undefined, `cannot read the YAML: ${(error as Error).message}`);
  }
}

function shortTag(tag: string): string {
  return tag.replace(/^tag:yaml\.org,2002:/, "!!");
}

function isMergeKey(key: unknown): boolean {
  return isScalar(key) && (key.value === "<<" || typeof key.value === "symbol");
}

interface KeyCheck {
  doc: Document;
  at: (node: Node | undefined) => Where;
  refuse: (node: Node | undefined, message: string) => never;
}

function checkKeys(map: YAMLMap, { doc, at, refuse }: KeyCheck) {
  const seen = new Map<string, Node>();
  for (const pair of map.items) {
    const key = pair.key;
    if (isMergeKey(key)) {
      const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
      for (const source of sources) {
        const target = isAlias(source) ? source.resolve(doc) : source;
        if (!isMap(target))
          refuse(
            isNode(source) ? source : (key as Node),
            "a merge key (<<) takes a map, or a list of maps, to merge in",
          );
      }
      continue;
    }
    if (!isScalar(key) || isAlias(key))
      refuse(
        isNode(key) ? key : undefined,
        "a key must be a plain name or value, not an alias, a list or a map",
      );
    const name = keyName(key);
    const first = seen.get(name);
    if (first)
      refuse(
        key as Node,
        `key ${JSON.stringify(name)} is written twice in one map (first at line ${at(first).line ?? "?"})`,
      );
    seen.set(name, key as Node);
  }
}

/** The key a YAML scalar becomes in data: `~` and empty become "", everything else its text. */
function keyName(key: unknown): string {
  const value = isScalar(key) ? key.value : key;
  return value === null || value === undefined ? "" : String(value);
}

/** Each loaded inventory's syntax tree, to point at values nested inside a variable later. */
const parsed = new Map<string, { doc: Document; lines: LineCounter }>();

/**
 * Where a host's variable, or a value nested inside it (`["1", "selectors"]`), is written, as a
 * source label ("group all (inventory.yaml:30)") and a place; undefined for a variable the
 * inventory does not set. A nested path the file does not hold falls back to the variable.
 */
export function variableSource(
  host: InventoryHost,
  name: string,
  inside: string[] = [],
): { label: string; where: Where } | undefined {
  const origin = Object.hasOwn(host.varDefinitions, name)
    ? host.varDefinitions[name]?.at(-1)
    : undefined;
  return origin ? originSource(host, origin, inside) : undefined;
}

/** {@link variableSource} for one given definition of a variable. */
export function originSource(
  host: InventoryHost,
  origin: VarOrigin,
  inside: string[] = [],
): { label: string; where: Where } | undefined {
  const file = host.where.file;
  const tree = file ? parsed.get(file) : undefined;
  if (!file || !tree) return undefined;
  const nested =
    inside.length > 0
      ? position(tree.doc, tree.lines, [...origin.path, ...inside], file)
      : undefined;
  const where = nested?.line ? nested : position(tree.doc, tree.lines, origin.path, file);
  return { label: `${origin.layer} (${file}:${where.line ?? "?"})`, where };
}

/** An inventory's YAML syntax tree and line table; `<<: *base` merge keys are read, as Ansible's are. */
export function parseInventoryText(text: string): { doc: Document; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    uniqueKeys: true,
    prettyErrors: false,
    merge: true,
  });
  return { doc, lines };
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "EISDIR"
        ? "it is a folder; name the inventory's YAML file"
        : code === "ENOENT"
          ? "no such file"
          : (error as Error).message;
    throw inputError("inventory", "INVENTORY_UNREADABLE", `cannot read inventory ${file}: ${why}`, {
      file,
    });
  }
}

function reportYamlErrors(doc: Document, lines: LineCounter, file: string, text: string) {
  const [first, ...rest] = yamlProblems(doc, lines, file, text);
  if (!first) return;
  const more = rest.length > 0 ? `; ${rest.length} more YAML error(s)` : "";
  throw inputError("inventory", "INVENTORY_YAML", `${first.message}${more}`, first.where);
}

/** Every YAML syntax error of a document, a duplicate key named by its text. */
export function yamlProblems(
  doc: Document,
  lines: LineCounter,
  file: string,
  text: string,
): { message: string; where: Where }[] {
  return doc.errors.map((error) => {
    const pos = lines.linePos(error.pos[0]);
    const where = { file, line: pos.line, column: pos.col };
    const said = error.message.split("\n")[0] ?? error.message;
    // The error marks the key's first character; the key runs to its quote or its colon.
    const key =
      /^(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s:,{}[\]]+)/.exec(text.slice(error.pos[0]))?.[0] ?? "";
    const message =
      error.code === "DUPLICATE_KEY" && key !== ""
        ? `invalid YAML: the key ${JSON.stringify(key)} is written twice in one map (a map's keys must be unique)`
        : `invalid YAML: ${said}`;
    return { message, where };
  });
}

/** The first schema problem in the file's order, and how many more there are. */
function schemaError(problems: SchemaProblem[], doc: Document, lines: LineCounter, file: string) {
  const placed = problems
    .map((problem) => ({ problem, where: position(doc, lines, problem.path, file) }))
    .sort(
      (a, b) =>
        // A problem with no line of its own goes last.
        (a.where.line ?? Number.MAX_SAFE_INTEGER) - (b.where.line ?? Number.MAX_SAFE_INTEGER) ||
        (a.where.column ?? 0) - (b.where.column ?? 0),
    );
  const { problem, where } = placed[0] as (typeof placed)[number];
  const more =
    problems.length > 1
      ? `; ${problems.length - 1} more problem(s): omens-play lint lists them all`
      : "";
  return inputError("inventory", "INVENTORY_SCHEMA", `${problem.message}${more}`, where);
}

/** A map's entry for a key, its own or one it takes in through a `<<` merge key. */
function findPair(doc: Document, map: YAMLMap, key: string, depth = 0): Pair | undefined {
  const name = (item: Pair) => (isMergeKey(item.key) ? "<<" : keyName(item.key));
  const own = map.items.find((item) => !isMergeKey(item.key) && name(item) === key);
  if (own || depth > 8) return own;
  // With merge keys on, yaml reads `<<` as a scalar holding the symbol Symbol(<<).
  for (const merge of map.items.filter((item) => isMergeKey(item.key))) {
    const sources = isSeq(merge.value) ? merge.value.items : [merge.value];
    for (const source of sources) {
      const target = isAlias(source) ? source.resolve(doc) : source;
      const found = isMap(target) ? findPair(doc, target, key, depth + 1) : undefined;
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * The line and column of the value at a path, at its key where it has one. Aliases are followed
 * to the anchored node, so a value shared through `*name` is placed where it is written.
 */
export function position(doc: Document, lines: LineCounter, path: string[], file: string): Where {
  let node: unknown = doc.contents;
  let key: unknown;
  for (const segment of path) {
    if (isAlias(node)) node = node.resolve(doc);
    key = undefined;
    if (isMap(node)) {
      const pair = findPair(doc, node, segment);
      key = pair?.key;
      node = pair?.value;
    } else if (isSeq(node)) node = node.items[Number(segment)];
    else return { file };
    if (node === undefined) return { file };
  }
  if (isAlias(node) && !isNode(key)) node = node.resolve(doc);
  const offset = (isNode(key) ? key : isNode(node) ? node : undefined)?.range?.[0];
  // The document itself, empty or only comments, is placed at its start.
  if (offset === undefined) return path.length === 0 ? { file, line: 1, column: 1 } : { file };
  const pos = lines.linePos(offset);
  return { file, line: pos.line, column: pos.col };
}

interface Layer {
  label: string;
  settings: RawSettings;
  /** The YAML path of the group or host, to point at each variable's own line. */
  path: string[];
}

function flatten(data: { all: RawGroup }, file: string, at: (path: string[]) => Where): Inventory {
  const inventory: Inventory = { file, hosts: new Map(), groups: new Map() };
  const hostLayers = new Map<string, HostEntry>();
  const groupPlaces = new Map<string, Where>();
  const visit = (
    name: string,
    group: RawGroup | null,
    path: string[],
    ancestors: string[],
    parents: Layer[],
  ) => {
    if (ancestors.includes(name)) {
      throw inputError(
        "inventory",
        "INVENTORY_CYCLE",
        `group "${name}" contains itself (${[...ancestors, name].join(" -> ")})`,
        at(path),
      );
    }
    if (!groupPlaces.has(name)) groupPlaces.set(name, at(path));
    const layer: Layer = { label: `group ${name}`, settings: group ?? {}, path };
    const chain = [...parents, layer];
    const members = ensureGroup(inventory, name);
    for (const [hostName, hostRaw] of Object.entries(group?.hosts ?? {})) {
      const hostPath = [...path, "hosts", hostName];
      const entry = hostLayers.get(hostName) ?? {
        groups: new Set(),
        layers: [],
        where: at(hostPath),
        path: hostPath,
      };
      mergeHostDefinition(entry, hostName, hostRaw, at(hostPath), hostPath);
      chain.forEach((l) => entry.layers.includes(l) || entry.layers.push(l));
      [...ancestors, name].forEach((g) => entry.groups.add(g));
      hostLayers.set(hostName, entry);
      if (!members.includes(hostName)) members.push(hostName);
    }
    for (const [childName, child] of Object.entries(group?.children ?? {})) {
      if (!isGroupReference(child) || !inventory.groups.has(childName)) {
        visit(childName, child, [...path, "children", childName], [...ancestors, name], chain);
      } else {
        linkExistingGroup(inventory, hostLayers, childName, [...ancestors, name], chain, at(path));
      }
      const childMembers = inventory.groups.get(childName) ?? [];
      childMembers.forEach((h) => members.includes(h) || members.push(h));
      ancestors.forEach((a) => addMembers(inventory, a, childMembers));
    }
  };
  visit("all", data.all, ["all"], [], []);
  for (const [name, entry] of hostLayers) refuseGroupNamed(name, entry, groupPlaces.get(name));
  for (const [name, entry] of hostLayers) {
    inventory.hosts.set(name, buildHost(name, entry, dirname(file)));
  }
  return inventory;
}

// A pattern, a --limit or a play's hosts that names it could mean either, and would silently
// pick the host.
function refuseGroupNamed(name: string, host: HostEntry, group: Where | undefined) {
  if (!group) return;
  const hostLine = host.where.line === undefined ? "" : ` (line ${host.where.line})`;
  throw inputError(
    "inventory",
    "INVENTORY_NAME_CLASH",
    `"${name}" is both a host${hostLine} and a group: a pattern naming it could mean either`,
    group,
    "rename the host or the group",
  );
}

function isGroupReference(group: RawGroup | null): boolean {
  return group === null || Object.keys(group).length === 0;
}

interface HostEntry {
  groups: Set<string>;
  layers: Layer[];
  where: Where;
  path: string[];
  own?: RawSettings;
}

function linkExistingGroup(
  inventory: Inventory,
  hostLayers: Map<string, HostEntry>,
  childName: string,
  ancestors: string[],
  chain: Layer[],
  where: Where,
) {
  if (ancestors.includes(childName)) {
    throw inputError(
      "inventory",
      "INVENTORY_CYCLE",
      `group "${childName}" contains itself (${[...ancestors, childName].join(" -> ")})`,
      where,
    );
  }
  for (const host of inventory.groups.get(childName) ?? []) {
    const entry = hostLayers.get(host);
    if (!entry) continue;
    ancestors.forEach((g) => entry.groups.add(g));
    chain.forEach((l) => entry.layers.includes(l) || entry.layers.unshift(l));
  }
}

function ensureGroup(inventory: Inventory, name: string): string[] {
  const existing = inventory.groups.get(name);
  if (existing) return existing;
  const members: string[] = [];
  inventory.groups.set(name, members);
  return members;
}

function addMembers(inventory: Inventory, group: string, hosts: string[]) {
  const members = ensureGroup(inventory, group);
  hosts.forEach((h) => members.includes(h) || members.push(h));
}

/** A host listed in several groups may carry its settings in one place only. */
function mergeHostDefinition(
  entry: HostEntry,
  name: string,
  raw: RawSettings | null,
  where: Where,
  path: string[],
) {
  if (raw === null || Object.keys(raw).length === 0) return;
  if (entry.own) {
    throw inputError(
      "inventory",
      "INVENTORY_DUPLICATE_HOST",
      `host "${name}" is defined with settings twice (first at line ${entry.where.line})`,
      where,
      "define the host's settings once and list it elsewhere as `name: {}`",
    );
  }
  entry.own = raw;
  entry.where = where;
  entry.path = path;
}

function buildHost(name: string, entry: HostEntry, baseDir: string): InventoryHost {
  // Layers are in visiting order: all, then parents before children, so children win.
  const layers = [...entry.layers];
  layers.push({ label: `host ${name}`, settings: entry.own ?? {}, path: entry.path });
  // Maps first: a variable may be named like an object's own property (`constructor`,
  // `__proto__`), which assignment into a plain object would read or even replace.
  const vars = new Map<string, unknown>();
  const varDefinitions = new Map<string, VarOrigin[]>();
  const settings: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer.settings.vars ?? {})) {
      vars.set(key, value);
      const origin = { layer: layer.label, path: [...layer.path, "vars", key] };
      varDefinitions.set(key, [...(varDefinitions.get(key) ?? []), origin]);
    }
    for (const key of CONNECTION_KEYS)
      if (layer.settings[key] !== undefined) settings[key] = layer.settings[key];
  }
  const groups = [...entry.groups];
  return {
    name,
    groups,
    vars: Object.fromEntries(vars),
    varDefinitions: Object.fromEntries(varDefinitions),
    connection: connectionSpec(name, settings, baseDir),
    where: entry.where,
  };
}

function connectionSpec(name: string, s: Record<string, unknown>, baseDir: string): ConnectionSpec {
  const path = (value: unknown) =>
    typeof value === "string" ? resolvePath(value, baseDir) : undefined;
  const spec: ConnectionSpec = {
    kind: (s.connection as "ssh" | "local" | undefined) ?? "ssh",
    address: (s.address as string | undefined) ?? name,
    port: (s.port as number | undefined) ?? 22,
    user: (s.user as string | undefined) ?? "root",
    agent: (s.agent as boolean | undefined) ?? false,
    knownHosts: path(s.knownHosts) ?? resolve(homedir(), ".ssh/known_hosts"),
    connectTimeoutMs: Math.round(((s.connectTimeout as number | undefined) ?? 10) * 1000),
    become: (s.become as boolean | undefined) ?? false,
    becomeUser: (s.becomeUser as string | undefined) ?? "root",
  };
  const key = path(s.key);
  if (key) spec.key = key;
  if (typeof s.becomePasswordEnv === "string") spec.becomePasswordEnv = s.becomePasswordEnv;
  return spec;
}

function resolvePath(value: string, baseDir: string): string {
  if (value.startsWith("~/")) return resolve(homedir(), value.slice(2));
  return isAbsolute(value) ? value : resolve(baseDir, value);
}
