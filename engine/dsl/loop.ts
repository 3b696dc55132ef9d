import {
  callerLocation,
  type Task,
  type TaskContext,
  type TaskOptions,
  type TaskResult,
} from "./task.js";

/** One item's result inside a loop's registered result. */
export type ItemResult<T, R extends TaskResult> = R & {
  /** The item the task was built from. */
  item: T;
  /** The item's label, as shown in the output. */
  label: string;
};

/** What a loop registers: the overall verdict and one result per item, in order. */
export interface LoopResult<T, R extends TaskResult> extends TaskResult {
  results: ItemResult<T, R>[];
}

/** Options of a loop as a whole; each item's own task carries the rest (until, changedWhen...). */
export type LoopOptions<T, R extends TaskResult> = Pick<
  TaskOptions<LoopResult<T, R>>,
  | "name"
  | "when"
  | "register"
  | "tags"
  | "notify"
  | "ignoreErrors"
  | "noLog"
  | "become"
  | "checkMode"
  | "runOnce"
  | "delegateTo"
  | "lint"
> & {
  /** The item's label in the output (default: the item itself when a string or number). */
  label?: (item: T, index: number) => string;
};

/**
 * One task run once per item: `build` makes the item's task, typed by the item. Items are an
 * array, or a function of the host's context evaluated when the task runs. The output has one
 * line per item; the registered result has `results`, one per item.
 *
 * @example
 * loop(["/etc/spire", "/var/lib/spire"], (dir) => file({ path: dir, state: "directory", mode: "0750" }))
 * loop(
 *   (ctx) => ctx.facts.addresses.ipv4,
 *   (address) => lineinfile({ path: "/etc/demo/allow", line: `allow ${address}` }),
 *   { name: "allow the host's addresses", register: "allowed" },
 * )
 */
export function loop<T, R extends TaskResult>(
  items: readonly T[] | ((ctx: TaskContext) => readonly T[]),
  build: (item: T, index: number) => Task<R>,
  options: LoopOptions<T, R> = {},
): Task<LoopResult<T, R>> {
  const { label, ...taskOptions } = options;
  return {
    kind: "task",
    module: "loop",
    args: {},
    options: taskOptions as TaskOptions,
    where: callerLocation(),
    loop: {
      items: items as readonly unknown[] | ((ctx: TaskContext) => readonly unknown[]),
      build: build as (item: unknown, index: number) => Task,
      ...(label ? { label: label as (item: unknown, index: number) => string } : {}),
    },
  };
}
