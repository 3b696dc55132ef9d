import type { Deferrable } from "../dsl/deferred.js";
import {
  callerLocation,
  contextWithoutFacts,
  makeTask,
  type Task,
  type TaskContext,
  type TaskOptions,
} from "../dsl/task.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition } from "./types.js";

/** Arguments of the `assert` module. */
export interface AssertArgs {
  /** A predicate, or several that must all hold. */
  that: ((ctx: TaskContext) => boolean) | ((ctx: TaskContext) => boolean)[];
  /** The failure message. */
  msg?: string;
  /** The message when it holds. */
  successMsg?: string;
}

type Predicate = (ctx: TaskContext) => boolean;

/**
 * Fails the host unless every predicate holds. Runs on the controller; reads nothing remote.
 *
 * @example
 * assert({ that: (ctx) => ctx.registered.svid?.stat?.exists === true, msg: "agent SVID missing" })
 */
export function assert(args: Deferrable<AssertArgs> & TaskOptions): Task {
  return makeTask("assert", args, callerLocation());
}

export const assertModule: ModuleDefinition<
  { that: Predicate[]; msg?: string; successMsg?: string },
  null
> = {
  name: "assert",
  validate(raw, where) {
    const args = new ArgReader("assert", raw, where, ["that", "msg", "successMsg"]);
    const that = args.value("that");
    const list = Array.isArray(that) ? that : [that];
    if (list.length === 0 || !list.every((p) => typeof p === "function")) {
      args.fail("ARG_TYPE", `assert: "that" must be a predicate function or an array of them`);
    }
    return {
      that: list as Predicate[],
      ...optional("msg", args.optionalString("msg")),
      ...optional("successMsg", args.optionalString("successMsg")),
    };
  },
  label: (args) => `assert ${args.that.length} condition${args.that.length === 1 ? "" : "s"}`,
  facts: async () => null,
  plan(args, _facts, ctx) {
    const context: TaskContext = ctx.taskContext ?? contextWithoutFacts(ctx);
    const failed = args.that.findIndex((p) => !p(context));
    if (failed < 0)
      return { status: "ok", reason: args.successMsg ?? "all assertions passed", ops: [] };
    const which = args.that.length > 1 ? ` (condition ${failed + 1} of ${args.that.length})` : "";
    return {
      status: "failed",
      // A message of the author's says what failed; without one, the predicate's source does.
      reason:
        args.msg !== undefined
          ? `${args.msg}${which}`
          : `assertion failed${which}: ${describePredicate(args.that[failed] as Predicate)}`,
      ops: [],
    };
  },
};

function describePredicate(predicate: Predicate): string {
  const text = predicate.toString().replace(/\s+/g, " ");
  return text.length > 120 ? text.slice(0, 117) + "..." : text;
}

function optional<K extends string>(key: K, value: string | undefined) {
  return (value === undefined ? {} : { [key]: value }) as Partial<Record<K, string>>;
}
