import type { Deferrable } from "../dsl/deferred.js";
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { inputError, type Where } from "../errors.js";
import type { FileFact } from "../facts/reader.js";
import { isSecret, SECRET_DIFF, type Secret } from "../secret.js";
import { ArgReader } from "./args.js";
import { ATTRIBUTE_KEYS, readAttributes, type Attributes } from "./attributes.js";
import { destinationFacts, planContent, readValidate, sha256 } from "./content.js";
import type { ModuleDefinition } from "./types.js";

/** Arguments of the `copy` module: exactly one of `content` and `src`. */
export interface CopyArgs {
  dest: string;
  /** The file's bytes. A Secret is written but never shown in a diff. */
  content?: string | Buffer | Secret;
  /** A controller file, relative to the role's `files/` folder (or the playbook's folder). */
  src?: string;
  owner?: string;
  group?: string;
  mode?: string;
  /**
   * The SHA-256 (64 hex digits) the source must have, e.g. for a release artifact given as a
   * local path. A source that differs is an input error, before anything is written.
   */
  sha256?: string;
  /**
   * A command that checks the new file before it replaces `dest`, the file named by `%s`.
   * When it fails, `dest` is left as it was.
   */
  validate?: string;
}

interface Valid extends Attributes {
  dest: string;
  source: { kind: "content"; bytes: Buffer; secret: boolean } | { kind: "src"; path: string };
  sha256?: string;
  validate?: string;
}

/**
 * Writes a file from literal content or a controller file, atomically.
 *
 * @example
 * copy({ dest: "/etc/demo/app.conf", content: "v=2\n", mode: "0644", notify: "restart demo" })
 */
export function copy(args: Deferrable<CopyArgs> & TaskOptions): Task {
  return makeTask("copy", args, callerLocation());
}

export const copyModule: ModuleDefinition<
  Valid,
  { fact: FileFact; current: Buffer | undefined; desired: Buffer }
> = {
  name: "copy",
  validate(raw, where) {
    const args = new ArgReader("copy", raw, where, [
      "dest",
      "content",
      "src",
      "sha256",
      "validate",
      ...ATTRIBUTE_KEYS,
    ]);
    const dest = args.string("dest");
    if (!dest.startsWith("/"))
      args.fail("ARG_VALUE", `copy: "dest" must be an absolute path, got "${dest}"`);
    if (args.has("content") === args.has("src"))
      args.fail("ARG_CONFLICT", `copy: give exactly one of "content" and "src"`);
    const valid: Valid = { dest, source: readSource(args), ...readAttributes(args, where) };
    if (args.has("sha256")) valid.sha256 = args.sha256("sha256");
    const validate = readValidate(args, "copy");
    if (validate !== undefined) valid.validate = validate;
    if (valid.sha256 && valid.source.kind === "content")
      checkSourceHash(valid.source.bytes, valid.sha256, "content", where);
    return valid;
  },
  label: (args) => `copy ${args.dest}`,
  async facts(args, reader, ctx) {
    const desired =
      args.source.kind === "content"
        ? { bytes: args.source.bytes, path: "content" }
        : readSourceFile(args.source.path, ctx.baseDir, ctx.where);
    if (args.sha256 && args.source.kind === "src")
      checkSourceHash(desired.bytes, args.sha256, desired.path, ctx.where);
    const facts = await destinationFacts(reader, args.dest, desired.bytes, ctx.diff);
    return { ...facts, desired: desired.bytes };
  },
  plan(args, facts) {
    const plan = planContent(
      args.dest,
      facts.desired,
      facts.fact,
      args,
      facts.current,
      args.validate,
    );
    if (args.source.kind === "content" && args.source.secret && plan.diff) {
      plan.diff = plan.diff.map((d) => ({ path: d.path, hidden: true, why: SECRET_DIFF }));
    }
    return plan;
  },
};

function readSource(args: ArgReader): Valid["source"] {
  if (args.has("src")) return { kind: "src", path: args.string("src") };
  const content = args.value("content");
  if (isSecret(content))
    return { kind: "content", bytes: Buffer.from(content.reveal()), secret: true };
  if (Buffer.isBuffer(content)) return { kind: "content", bytes: content, secret: false };
  return { kind: "content", bytes: Buffer.from(args.text("content")), secret: false };
}

/** A source that is not the artifact the playbook names is refused before any write. */
function checkSourceHash(bytes: Buffer, wanted: string, source: string, where: Where): void {
  const actual = sha256(bytes);
  if (actual === wanted) return;
  throw inputError(
    "playbook",
    "COPY_SHA256_MISMATCH",
    `copy: ${source} has sha256 ${actual}, expected ${wanted}; nothing was written`,
    where,
  );
}

function readSourceFile(src: string, baseDir: string, where: Where) {
  const candidates = isAbsolute(src)
    ? [src]
    : [resolve(baseDir, "files", src), resolve(baseDir, src)];
  for (const path of candidates) {
    try {
      return { bytes: readFileSync(path), path };
    } catch {
      // try the next candidate
    }
  }
  throw inputError(
    "playbook",
    "COPY_SRC_MISSING",
    `copy: source file not found: ${candidates.join(" or ")}`,
    where,
  );
}
