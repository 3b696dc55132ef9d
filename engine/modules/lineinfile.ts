import type { Secret } from "../secret.js";
import type { Deferrable } from "../dsl/deferred.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import type { FileWithContent } from "../facts/reader.js";
import { ArgReader } from "./args.js";
import { ATTRIBUTE_KEYS, readAttributes, type Attributes } from "./attributes.js";
import { isBinary, planContent } from "./content.js";
import { editBlock, editLine, type Anchor, type LineSpec } from "./line-edit.js";
import type { ModuleDefinition, Plan } from "./types.js";

/** Arguments of the `lineinfile` module. */
export interface LineinfileArgs {
  path: string;
  /** The line to ensure (required with state "present"); a Secret is written, never shown. */
  line?: string | Secret;
  /** Replace the last line matching this instead of adding a new one. */
  regexp?: string;
  state?: "present" | "absent";
  /** Where a new line goes when nothing matches: after the last line matching this, or "EOF". */
  insertafter?: string;
  /** Where a new line goes when nothing matches: before the last line matching this, or "BOF". */
  insertbefore?: string;
  /** Create the file when it is absent (otherwise that is an error). */
  create?: boolean;
  owner?: string;
  group?: string;
  mode?: string;
}

/** Arguments of the `blockinfile` module. */
export interface BlockinfileArgs {
  path: string;
  /** The block's lines; an empty block removes the block. A Secret is written, never shown. */
  block?: string | Secret;
  state?: "present" | "absent";
  /** Marker line; `{mark}` becomes BEGIN and END. */
  marker?: string;
  insertafter?: string;
  insertbefore?: string;
  create?: boolean;
  owner?: string;
  group?: string;
  mode?: string;
}

interface Common extends Attributes {
  path: string;
  create: boolean;
}

/**
 * Ensures one line in a file, replacing the last line that matches `regexp` in place.
 *
 * @example
 * lineinfile({ path: "/srv/demo/app.ini", regexp: "^port=", line: "port=8080" })
 */
export function lineinfile(args: Deferrable<LineinfileArgs> & TaskOptions): Task {
  return makeTask("lineinfile", args, callerLocation());
}

/**
 * Ensures a block of lines between marker lines.
 *
 * @example
 * blockinfile({ path: "/etc/hosts", block: "10.0.0.1 spire\n", marker: "# {mark} lab hosts" })
 */
export function blockinfile(args: Deferrable<BlockinfileArgs> & TaskOptions): Task {
  return makeTask("blockinfile", args, callerLocation());
}

const EDIT_KEYS = [
  "path",
  "state",
  "insertafter",
  "insertbefore",
  "create",
  ...ATTRIBUTE_KEYS,
] as const;

export const lineinfileModule: ModuleDefinition<Common & { spec: LineSpec }, FileWithContent> = {
  name: "lineinfile",
  validate(raw, where) {
    const args = new ArgReader("lineinfile", raw, where, [...EDIT_KEYS, "line", "regexp"]);
    const state = args.oneOf("state", ["present", "absent"] as const, "present");
    const regexp = compile(args, "regexp");
    const line =
      state === "present"
        ? args.textOrSecret("line")
        : args.has("line")
          ? args.textOrSecret("line")
          : undefined;
    if (state === "absent" && !regexp && line === undefined)
      args.fail("ARG_MISSING", `lineinfile: state "absent" needs "regexp" or "line"`);
    if (line?.includes("\n"))
      args.fail(
        "ARG_VALUE",
        `lineinfile: "line" must be a single line; use blockinfile for several`,
      );
    const spec: LineSpec =
      state === "present"
        ? { state, line: line as string, anchor: anchor(args), ...(regexp ? { regexp } : {}) }
        : { state, ...(line === undefined ? {} : { line }), ...(regexp ? { regexp } : {}) };
    return { ...common(args, where), spec };
  },
  label: (args) => `lineinfile ${args.path}`,
  facts: (args, reader) => reader.statWithContent(args.path),
  plan: (args, facts) => planEdit(args, facts, (text) => editLine(text, args.spec)),
};

export const blockinfileModule: ModuleDefinition<
  Common & { block: string; marker: string; state: "present" | "absent"; anchor: Anchor },
  FileWithContent
> = {
  name: "blockinfile",
  validate(raw, where) {
    const args = new ArgReader("blockinfile", raw, where, [...EDIT_KEYS, "block", "marker"]);
    const marker = args.optionalString("marker") ?? "# {mark} OMENS MANAGED BLOCK";
    if (!marker.includes("{mark}"))
      args.fail("ARG_VALUE", `blockinfile: "marker" must contain {mark}`);
    const state = args.oneOf("state", ["present", "absent"] as const, "present");
    const block = args.has("block") ? args.textOrSecret("block") : "";
    return { ...common(args, where), block, marker, state, anchor: anchor(args) };
  },
  label: (args) => `blockinfile ${args.path}`,
  facts: (args, reader) => reader.statWithContent(args.path),
  plan: (args, facts) =>
    planEdit(args, facts, (text) =>
      editBlock(text, {
        state: args.state,
        block: args.block,
        begin: args.marker.replace("{mark}", "BEGIN"),
        end: args.marker.replace("{mark}", "END"),
        anchor: args.anchor,
      }),
    ),
};

function common(args: ArgReader, where: Parameters<typeof readAttributes>[1]): Common {
  const path = args.string("path");
  if (!path.startsWith("/"))
    args.fail("ARG_VALUE", `"path" must be an absolute path, got "${path}"`);
  return { path, create: args.optionalBoolean("create") ?? false, ...readAttributes(args, where) };
}

function compile(args: ArgReader, key: string): RegExp | undefined {
  const source = args.optionalString(key);
  if (source === undefined) return undefined;
  try {
    return new RegExp(source);
  } catch (error) {
    return args.fail(
      "ARG_REGEXP",
      `"${key}" is not a valid regular expression: ${(error as Error).message}`,
    );
  }
}

function anchor(args: ArgReader): Anchor {
  if (args.has("insertafter") && args.has("insertbefore"))
    args.fail("ARG_CONFLICT", `give at most one of "insertafter" and "insertbefore"`);
  const after = args.optionalString("insertafter");
  const before = args.optionalString("insertbefore");
  if (after !== undefined)
    return after === "EOF"
      ? { kind: "eof" }
      : { kind: "after", pattern: compile(args, "insertafter") as RegExp };
  if (before !== undefined)
    return before === "BOF"
      ? { kind: "bof" }
      : { kind: "before", pattern: compile(args, "insertbefore") as RegExp };
  return { kind: "eof" };
}

function planEdit(args: Common, facts: FileWithContent, edit: (text: string) => string): Plan {
  if (facts.fact.kind === "absent" && !args.create) {
    return {
      status: "failed",
      reason: `${args.path} does not exist (set create: true to create it)`,
      ops: [],
    };
  }
  const before = facts.content ?? Buffer.alloc(0);
  if (isBinary(before))
    return {
      status: "failed",
      reason: `${args.path} is not a UTF-8 text file; refusing to edit it line by line`,
      ops: [],
    };
  const after = Buffer.from(edit(before.toString("utf8")));
  const unchanged = facts.fact.kind !== "absent" && after.equals(before);
  return planContent(args.path, unchanged ? before : after, facts.fact, args, before);
}
