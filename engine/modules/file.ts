import type { Deferrable } from "../dsl/deferred.js";
import { formatMode } from "../mode.js";
import type { FileFact } from "../facts/reader.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { ArgReader } from "./args.js";
import {
  ATTRIBUTE_KEYS,
  attributeChanges,
  desiredMode,
  readAttributes,
  type Attributes,
} from "./attributes.js";
import type { ModuleDefinition, Op, Plan } from "./types.js";

export type FileState = "directory" | "file" | "absent" | "link" | "touch";

/** Arguments of the `file` module. */
export interface FileArgs {
  path: string;
  /** `file` only manages attributes of an existing file; `touch` creates an empty one if absent. */
  state?: FileState;
  /** Target of a `link`. */
  src?: string;
  owner?: string;
  group?: string;
  /** Octal digits or symbolic, always a string: `"0750"`, `"u=rwx,g=rx,o="`. */
  mode?: string;
}

interface Valid extends Attributes {
  path: string;
  state: FileState;
  src?: string;
}

/**
 * Manages a directory, a file's attributes, a symlink, or makes a path absent.
 *
 * @example
 * file({ path: "/etc/spire/agent", state: "directory", owner: "spire", mode: "0750" })
 */
export function file(args: Deferrable<FileArgs> & TaskOptions): Task {
  return makeTask("file", args, callerLocation());
}

export const fileModule: ModuleDefinition<Valid, FileFact> = {
  name: "file",
  validate(raw, where) {
    const args = new ArgReader("file", raw, where, ["path", "state", "src", ...ATTRIBUTE_KEYS]);
    const state = args.oneOf(
      "state",
      ["directory", "file", "absent", "link", "touch"] as const,
      "file",
    );
    const valid: Valid = {
      path: absolutePath(args, "path"),
      state,
      ...readAttributes(args, where),
    };
    if (state === "link") valid.src = args.string("src");
    else if (args.has("src")) args.fail("ARG_UNUSED", `file: "src" is only used with state "link"`);
    return valid;
  },
  label: (args) => `file ${args.path}`,
  async facts(args, reader) {
    return (await reader.stat([args.path])).get(args.path) ?? { kind: "absent" };
  },
  plan(args, fact) {
    switch (args.state) {
      case "absent":
        return fact.kind === "absent"
          ? { status: "ok", reason: "already absent", ops: [] }
          : {
              status: "changed",
              reason: `${fact.kind} will be removed`,
              ops: [{ kind: "remove", path: args.path }],
              diff: [{ path: args.path, attributes: [`${fact.kind} -> absent`] }],
            };
      case "directory":
        return planDirectory(args, fact);
      case "link":
        return planLink(args, fact);
      case "touch":
        return planTouch(args, fact);
      case "file":
        return fact.kind === "absent"
          ? {
              status: "failed",
              reason: `${args.path} does not exist (state "file" only manages an existing file; use copy, template or state "touch")`,
              ops: [],
            }
          : planAttributes(args, fact, "file");
    }
  },
};

function absolutePath(args: ArgReader, key: string): string {
  const path = args.string(key);
  if (!path.startsWith("/"))
    args.fail("ARG_VALUE", `file: "${key}" must be an absolute path, got "${path}"`);
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}

function planDirectory(args: Valid, fact: FileFact): Plan {
  if (fact.kind === "absent") {
    const mode = desiredMode(args, 0o755, true);
    const op: Op = {
      kind: "mkdir",
      path: args.path,
      ...(mode === undefined ? {} : { mode }),
      ...owners(args),
    };
    const attrs = mode === undefined ? [] : [`mode ${formatMode(mode)}`];
    return {
      status: "changed",
      reason: "directory is absent",
      ops: [op],
      diff: [{ path: args.path, attributes: ["absent -> directory", ...attrs] }],
    };
  }
  return planAttributes(args, fact, "directory");
}

function planAttributes(
  args: Valid,
  fact: Exclude<FileFact, { kind: "absent" }>,
  want: "file" | "directory",
): Plan {
  if (fact.kind !== want) {
    return {
      status: "failed",
      reason: `${args.path} is a ${fact.kind}, expected a ${want}`,
      ops: [],
    };
  }
  const { ops, lines } = attributeChanges(args.path, fact, args);
  if (ops.length === 0)
    return { status: "ok", reason: `${want} exists with the wanted attributes`, ops: [] };
  return {
    status: "changed",
    reason: lines.join(", "),
    ops,
    diff: [{ path: args.path, attributes: lines }],
  };
}

function planLink(args: Valid, fact: FileFact): Plan {
  const target = args.src as string;
  if (fact.kind === "link" && fact.target === target) {
    const { ops, lines } = attributeChanges(args.path, fact, { ...args, mode: undefined });
    if (ops.length === 0)
      return { status: "ok", reason: `link already points to ${target}`, ops: [] };
    return {
      status: "changed",
      reason: lines.join(", "),
      ops,
      diff: [{ path: args.path, attributes: lines }],
    };
  }
  if (fact.kind === "file" || fact.kind === "directory" || fact.kind === "other") {
    return {
      status: "failed",
      reason: `${args.path} is a ${fact.kind}; refusing to replace it with a link`,
      ops: [],
    };
  }
  const before = fact.kind === "link" ? `link to ${fact.target}` : "absent";
  return {
    status: "changed",
    reason: fact.kind === "link" ? "link points elsewhere" : "link is absent",
    ops: [{ kind: "symlink", path: args.path, target, ...owners(args) }],
    diff: [{ path: args.path, attributes: [`${before} -> link to ${target}`] }],
  };
}

function planTouch(args: Valid, fact: FileFact): Plan {
  if (fact.kind !== "absent") return planAttributes(args, fact, "file");
  const mode = desiredMode(args, 0o644, false);
  const ops: Op[] = [{ kind: "touch", path: args.path }];
  if (mode !== undefined) ops.push({ kind: "chmod", path: args.path, mode });
  if (args.owner || args.group)
    ops.push({ kind: "chown", path: args.path, ...owners(args), followLinks: true });
  return {
    status: "changed",
    reason: "file is absent",
    ops,
    diff: [{ path: args.path, attributes: ["absent -> empty file"] }],
  };
}

function owners(args: Attributes) {
  return {
    ...(args.owner ? { owner: args.owner } : {}),
    ...(args.group ? { group: args.group } : {}),
  };
}
