import type { TSchema, Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import type { Task, TaskOptions } from "../../engine/index.js";

/**
 * Helpers for playbooks that take tasks from several roles: a role's variables read out of a
 * host's merged variables, and a role-built task given more options.
 */

/** The role's variables with its defaults, from a host's merged variables (others dropped). */
export function roleVars<S extends TSchema>(schema: S, vars: object): Static<S> {
  const copy = Value.Clean(schema, structuredClone({ ...vars }));
  return Value.Default(schema, copy) as Static<S>;
}

/** A task built by a role helper, with more task options (a name, a delegate, a condition). */
export function withOptions(task: Task, options: TaskOptions): Task {
  return { ...task, options: { ...task.options, ...options } };
}
