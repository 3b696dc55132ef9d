import { basename } from "node:path";
import { OmensError, type Where } from "../errors.js";
import { SECRET_MASK } from "../secret.js";

/**
 * The name shown for a noLog task that has none. Module labels quote arguments (a command's
 * whole argv), so a noLog task is named by its module and place instead.
 */
export function hiddenLabel(module: string, where: Where): string {
  const line = where.line === undefined ? "" : `:${where.line}`;
  const place = where.file ? ` at ${basename(where.file)}${line}` : "";
  return `${module} (arguments hidden: noLog)${place}`;
}

/**
 * An argument error of a noLog task, with every argument value masked: it still names the
 * argument and what was expected, but never echoes what was given (a regexp error quotes its
 * pattern, a type error quotes the value).
 */
export function maskArgumentValues(error: unknown, args: Readonly<Record<string, unknown>>) {
  if (!(error instanceof OmensError)) return error;
  const values = stringValues(args)
    .filter((v) => v.length >= 4)
    .sort((a, b) => b.length - a.length);
  const mask = (text: string) => values.reduce((t, v) => t.split(v).join(SECRET_MASK), text);
  const masked = new OmensError(mask(error.message), {
    code: error.code,
    family: error.family,
    where: error.where,
    ...(error.hint === undefined ? {} : { hint: mask(error.hint) }),
  });
  // The original keeps the values, so it is not kept as `cause`: -vvv prints causes' stacks.
  masked.stack = mask(error.stack ?? masked.stack ?? "");
  return masked;
}

function stringValues(value: unknown, seen = new Set<object>()): string[] {
  if (typeof value === "string") return [value];
  if (!value || typeof value !== "object" || seen.has(value)) return [];
  seen.add(value);
  if (Array.isArray(value)) return value.flatMap((item) => stringValues(item, seen));
  if (Object.getPrototypeOf(value) === Object.prototype)
    return Object.values(value).flatMap((item) => stringValues(item, seen));
  return [];
}
