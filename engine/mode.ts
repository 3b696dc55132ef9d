import { inputError, type Where } from "./errors.js";

/**
 * A file mode as the user wrote it. Only strings are accepted: a number cannot show whether
 * `2755` meant octal or decimal (decimal 2755 is octal 5303, a very different mode).
 */
export type ModeSpec = string;

/** A validated mode: either absolute octal bits, or symbolic clauses applied to a current mode. */
export type Mode = { kind: "octal"; bits: number } | { kind: "symbolic"; clauses: Clause[] };

interface Clause {
  who: number; // mask of the permission bits the clause touches
  op: "=" | "+" | "-";
  perms: string;
}

const OCTAL = /^[0-7]{3,4}$/;
const CLAUSE = /^([ugoa]*)([=+-])([rwxXst]*)$/;

/** Validates a mode argument; a number or a malformed string is an input error. */
export function validateMode(value: unknown, where: Where, argName = "mode"): Mode {
  if (typeof value === "number") throw numericModeError(value, where, argName);
  if (typeof value !== "string") {
    throw inputError("playbook", "MODE_TYPE", `${argName} must be a string such as "0640"`, where);
  }
  if (OCTAL.test(value)) return { kind: "octal", bits: parseInt(value, 8) };
  const clauses = value.split(",").map((text) => parseClause(text, value, where, argName));
  return { kind: "symbolic", clauses };
}

function numericModeError(value: number, where: Where, argName: string) {
  const asOctal = Number.isInteger(value) && value >= 0 ? `0o${value.toString(8)}` : "nothing";
  return inputError(
    "playbook",
    "MODE_NUMERIC",
    `${argName} is the number ${value}, which would mean ${asOctal}; modes must be strings`,
    where,
    `write ${argName}: "${value}" (octal digits) or a symbolic mode such as "u=rwx,g=rx,o="`,
  );
}

function parseClause(text: string, whole: string, where: Where, argName: string): Clause {
  const match = CLAUSE.exec(text);
  if (!match) {
    throw inputError(
      "playbook",
      "MODE_SYNTAX",
      `${argName} "${whole}" is neither octal digits (e.g. "0640") nor symbolic (e.g. "u=rw,g=r,o=")`,
      where,
    );
  }
  const [, who = "", op, perms = ""] = match;
  return { who: whoMask(who), op: op as Clause["op"], perms };
}

function whoMask(who: string): number {
  if (who === "" || who.includes("a")) return 0o7777;
  let mask = 0;
  if (who.includes("u")) mask |= 0o4700;
  if (who.includes("g")) mask |= 0o2070;
  if (who.includes("o")) mask |= 0o1007;
  return mask;
}

/** The permission bits a mode gives, starting from the current bits of a file. */
export function resolveMode(mode: Mode, current: number, isDirectory: boolean): number {
  if (mode.kind === "octal") return mode.bits;
  return mode.clauses.reduce((bits, clause) => applyClause(bits, clause, isDirectory), current);
}

function applyClause(bits: number, clause: Clause, isDirectory: boolean): number {
  const hasExec = (bits & 0o111) !== 0;
  let add = 0;
  for (const p of clause.perms) add |= permBits(p, isDirectory || hasExec);
  add &= clause.who;
  if (clause.op === "+") return bits | add;
  if (clause.op === "-") return bits & ~add;
  return (bits & ~clause.who) | add;
}

function permBits(p: string, execApplies: boolean): number {
  switch (p) {
    case "r":
      return 0o444;
    case "w":
      return 0o222;
    case "x":
      return 0o111;
    case "X":
      return execApplies ? 0o111 : 0;
    case "s":
      return 0o6000;
    case "t":
      return 0o1000;
    default:
      return 0;
  }
}

/** "0640" style rendering, four digits when special bits are set. */
export function formatMode(bits: number): string {
  const text = (bits & 0o7777).toString(8);
  return text.length >= 4 ? text : text.padStart(4, "0");
}
