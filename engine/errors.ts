/**
 * Every failure the engine reports is an {@link OmensError}: a stable `code`, a family that
 * decides the exit code, and the place it happened (file:line, host, task) when known.
 */

/** Where an error happened. Every field is optional: fill in what is known. */
export interface Where {
  file?: string;
  line?: number;
  column?: number;
  host?: string;
  task?: string;
}

/** Error families; each maps to one exit code (see `exitCodeFor`). */
export type ErrorFamily =
  | "inventory"
  | "usage"
  | "playbook"
  | "template"
  | "task"
  | "connection"
  | "command"
  | "lint"
  | "bug";

export interface OmensErrorOptions {
  code: string;
  family: ErrorFamily;
  where?: Where;
  hint?: string;
  cause?: unknown;
}

/** The one error base class of the engine. */
export class OmensError extends Error {
  readonly code: string;
  readonly family: ErrorFamily;
  readonly where: Where;
  readonly hint: string | undefined;

  constructor(message: string, options: OmensErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OmensError";
    this.code = options.code;
    this.family = options.family;
    this.where = options.where ?? {};
    this.hint = options.hint;
  }

  /** A copy of this error with more location facts filled in (existing ones win). */
  at(where: Where): OmensError {
    const copy = new OmensError(this.message, {
      code: this.code,
      family: this.family,
      where: { ...where, ...this.where },
      hint: this.hint,
      cause: this.cause,
    });
    copy.stack = this.stack;
    return copy;
  }
}

/** Input that cannot be used: inventory, playbook, template or command-line mistakes. */
export function inputError(
  family: "inventory" | "usage" | "playbook" | "template",
  code: string,
  message: string,
  where?: Where,
  hint?: string,
): OmensError {
  return new OmensError(message, { code, family, where, hint });
}

/** A task that could not do its work on a host. */
export function taskError(code: string, message: string, where?: Where, cause?: unknown) {
  return new OmensError(message, { code, family: "task", where, cause });
}

/** A host that could not be reached or spoken to. */
export function connectionError(
  code: string,
  message: string,
  where: Where,
  hint?: string,
  cause?: unknown,
): OmensError {
  return new OmensError(message, { code, family: "connection", where, hint, cause });
}

/** A broken internal invariant: always a bug in Omens, never the user's fault. */
export function bug(message: string): OmensError {
  return new OmensError(`internal error (a bug in Omens, please report it): ${message}`, {
    code: "BUG",
    family: "bug",
  });
}

/** Wraps anything thrown into an OmensError, keeping the original as `cause`. */
export function toOmensError(error: unknown, fallback: Omit<OmensErrorOptions, "cause">) {
  if (error instanceof OmensError) return error.at(fallback.where ?? {});
  const message = error instanceof Error ? error.message : String(error);
  return new OmensError(message, { ...fallback, cause: error });
}

/** "file:line:col" or "file:line" or "file", from whichever parts are known. */
export function formatLocation(where: Where): string | undefined {
  if (!where.file) return undefined;
  if (where.line === undefined) return where.file;
  return where.column === undefined
    ? `${where.file}:${where.line}`
    : `${where.file}:${where.line}:${where.column}`;
}

/** One-line-per-fact rendering used by every renderer for a failure. */
export function describeError(error: OmensError): string {
  const parts = [error.message];
  const location = formatLocation(error.where);
  const context = [
    error.where.host && `host ${error.where.host}`,
    error.where.task && `task "${error.where.task}"`,
    location && `at ${location}`,
  ].filter(Boolean);
  if (context.length > 0) parts.push(`  (${context.join(", ")})`);
  if (error.hint) parts.push(`  hint: ${error.hint}`);
  return parts.join("\n");
}
