import { formatMode, resolveMode, validateMode, type Mode } from "../mode.js";
import type { FileFact } from "../facts/reader.js";
import type { ArgReader } from "./args.js";
import type { Op } from "./types.js";

/** Desired owner, group and mode, spelt the same in every module. */
export interface Attributes {
  owner?: string;
  group?: string;
  mode?: Mode;
}

export const ATTRIBUTE_KEYS = ["owner", "group", "mode"] as const;

/** Reads `owner`, `group` and `mode`; a numeric mode is refused before any host is contacted. */
export function readAttributes(
  args: ArgReader,
  where: Parameters<typeof validateMode>[1],
): Attributes {
  const attributes: Attributes = {};
  const owner = args.optionalString("owner");
  const group = args.optionalString("group");
  if (owner) attributes.owner = owner;
  if (group) attributes.group = group;
  if (args.has("mode")) attributes.mode = validateMode(args.value("mode"), where);
  return attributes;
}

type Existing = Exclude<FileFact, { kind: "absent" }>;

/** The mode bits a path should end up with, or undefined when mode is not managed. */
export function desiredMode(attributes: Attributes, current: number, isDirectory: boolean) {
  return attributes.mode === undefined
    ? undefined
    : resolveMode(attributes.mode, current, isDirectory);
}

/** Ops and diff lines that bring an existing path's owner, group and mode in line. */
export function attributeChanges(path: string, fact: Existing, attributes: Attributes) {
  const ops: Op[] = [];
  const lines: string[] = [];
  const ownerWrong =
    attributes.owner !== undefined && !sameId(attributes.owner, fact.owner, fact.uid);
  const groupWrong =
    attributes.group !== undefined && !sameId(attributes.group, fact.group, fact.gid);
  if (ownerWrong || groupWrong) {
    ops.push({
      kind: "chown",
      path,
      ...(ownerWrong ? { owner: attributes.owner } : {}),
      ...(groupWrong ? { group: attributes.group } : {}),
      followLinks: fact.kind !== "link",
    });
    if (ownerWrong) lines.push(`owner ${fact.owner} -> ${attributes.owner}`);
    if (groupWrong) lines.push(`group ${fact.group} -> ${attributes.group}`);
  }
  const mode =
    fact.kind === "link"
      ? undefined
      : desiredMode(attributes, fact.mode, fact.kind === "directory");
  if (mode !== undefined && mode !== fact.mode) {
    ops.push({ kind: "chmod", path, mode });
    lines.push(`mode ${formatMode(fact.mode)} -> ${formatMode(mode)}`);
  }
  return { ops, lines };
}

/** Owner given by name or number matches the host's name or numeric id. */
function sameId(wanted: string, name: string, id: number): boolean {
  return wanted === name || (/^\d+$/.test(wanted) && Number(wanted) === id);
}
