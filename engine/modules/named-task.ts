import { makeTask, type Task } from "../dsl/task.js";
import type { Where } from "../errors.js";

/** The option that names a task whose module already has a `name` argument (user, group, apt). */
export interface NamedResourceOptions {
  /** Shown in output instead of the default "module NAME" label. */
  taskName?: string;
}

/**
 * Builds a task for a module whose `name` argument names the resource (an account, a
 * package), not the task: `name` goes to the module and `taskName` becomes the task's name.
 */
export function makeNamedTask(
  module: string,
  input: { name?: unknown; taskName?: string },
  where: Where,
): Task {
  const { name, taskName, ...rest } = input;
  const task = makeTask(module, taskName === undefined ? rest : { ...rest, name: taskName }, where);
  return name === undefined ? task : { ...task, args: { ...task.args, name } };
}
