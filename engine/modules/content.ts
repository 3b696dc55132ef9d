import { createHash } from "node:crypto";
import { createTwoFilesPatch } from "diff";
import type { DiffEntry } from "../events.js";
import type { FileFact, HostReader } from "../facts/reader.js";
import { formatMode } from "../mode.js";
import { attributeChanges, desiredMode, type Attributes } from "./attributes.js";
import type { ArgReader } from "./args.js";
import type { Plan } from "./types.js";

/**
 * The `validate` argument of copy and template: a command that checks the new content in its
 * temp file, named by `%s`, before it replaces the destination (`nginx -t -c %s`).
 */
export function readValidate(args: ArgReader, module: string): string | undefined {
  const validate = args.optionalString("validate");
  if (validate !== undefined && !validate.includes("%s"))
    args.fail(
      "ARG_VALUE",
      `${module}: "validate" must name the file to check as %s, got ${JSON.stringify(validate)}`,
    );
  return validate;
}

/** Diffs longer than this many lines are cut, and say so. */
const DIFF_MAX_LINES = 400;
/** Files larger than this are compared by hash only; the diff says they differ. */
const DIFF_MAX_BYTES = 1024 * 1024;

export function sha256(content: Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

/**
 * Plans a whole-file write: nothing when the hash and attributes match, a chmod/chown when
 * only attributes differ, an atomic write otherwise. Shared by copy, template, lineinfile
 * and blockinfile so that they agree on what "changed" means.
 */
export function planContent(
  path: string,
  desired: Buffer,
  fact: FileFact,
  attributes: Attributes,
  current: Buffer | undefined,
  validate?: string,
): Plan {
  if (fact.kind === "directory" || fact.kind === "other") {
    return {
      status: "failed",
      reason: `${path} exists and is a ${fact.kind}, not a file`,
      ops: [],
    };
  }
  if (fact.kind === "absent") {
    const mode = desiredMode(attributes, 0o644, false);
    const write = {
      kind: "write" as const,
      path,
      content: desired,
      ...ownerAndMode(attributes, mode),
      ...(validate === undefined ? {} : { validate }),
    };
    const attrs = mode === undefined ? [] : [`mode ${formatMode(mode)}`];
    return {
      status: "changed",
      reason: "file is absent",
      ops: [write],
      diff: [contentDiff(path, Buffer.alloc(0), desired, attrs, true)],
    };
  }
  const same = fact.kind === "file" && fact.sha256 === sha256(desired);
  const { ops, lines } = attributeChanges(path, fact, attributes);
  if (same && ops.length === 0)
    return { status: "ok", reason: "content and attributes match", ops: [] };
  if (same)
    return {
      status: "changed",
      reason: `attributes differ: ${lines.join(", ")}`,
      ops,
      diff: [{ path, attributes: lines }],
    };
  const mode = desiredMode(attributes, fact.mode, false);
  const write = {
    kind: "write" as const,
    path,
    content: desired,
    ...ownerAndMode(attributes, mode),
    ...(validate === undefined ? {} : { validate }),
  };
  const reason = lines.length > 0 ? `content differs; ${lines.join(", ")}` : "content differs";
  return {
    status: "changed",
    reason,
    ops: [write],
    diff: [contentDiff(path, current, desired, lines, false)],
  };
}

function ownerAndMode(attributes: Attributes, mode: number | undefined) {
  return {
    ...(mode === undefined ? {} : { mode }),
    ...(attributes.owner ? { owner: attributes.owner } : {}),
    ...(attributes.group ? { group: attributes.group } : {}),
  };
}

/** A unified diff of two versions, or a one-line note for binary or oversized files. */
export function contentDiff(
  path: string,
  before: Buffer | undefined,
  after: Buffer,
  attributes: string[],
  created: boolean,
): DiffEntry {
  const entry: DiffEntry = { path, ...(attributes.length > 0 ? { attributes } : {}) };
  if (before === undefined) return { ...entry, content: "(previous content not read)" };
  if (isBinary(before) || isBinary(after)) return { ...entry, content: "binary files differ" };
  if (before.length > DIFF_MAX_BYTES || after.length > DIFF_MAX_BYTES) {
    return {
      ...entry,
      content: `files differ (too large to diff: ${before.length} -> ${after.length} bytes)`,
    };
  }
  const patch = createTwoFilesPatch(
    created ? "/dev/null" : `${path} (before)`,
    `${path} (after)`,
    before.toString("utf8"),
    after.toString("utf8"),
    "",
    "",
    { context: 3 },
  );
  // Drop the "====" banner and the file header lines: renderers print their own header.
  return { ...entry, content: capLines(patch.split("\n").slice(3).join("\n")) };
}

function capLines(text: string): string {
  const lines = text.split("\n");
  if (lines.length <= DIFF_MAX_LINES) return text;
  return [
    ...lines.slice(0, DIFF_MAX_LINES),
    `... diff cut: ${lines.length - DIFF_MAX_LINES} more lines not shown`,
  ].join("\n");
}

/** Binary when it has a NUL byte or is not valid UTF-8. */
export function isBinary(content: Buffer): boolean {
  if (content.includes(0)) return true;
  return !Buffer.from(content.toString("utf8"), "utf8").equals(content);
}

/** The destination's facts, and its old bytes only when they differ and a diff was asked for. */
export async function destinationFacts(
  reader: HostReader,
  path: string,
  desired: Buffer,
  wantDiff: boolean,
): Promise<{ fact: FileFact; current: Buffer | undefined }> {
  const fact = (await reader.stat([path])).get(path) ?? { kind: "absent" as const };
  const differs = fact.kind === "file" && fact.sha256 !== sha256(desired);
  if (!differs || !wantDiff) return { fact, current: undefined };
  return { fact, current: (await reader.statWithContent(path)).content };
}
