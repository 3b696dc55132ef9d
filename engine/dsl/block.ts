import { callerLocation, type Task, type TaskContext } from "./task.js";
import type { Where } from "../errors.js";

/** What a play, a role or a block lists: tasks and nested blocks. */
export type Step = Task | Block;

/** Options a block passes down to every task inside it (its rescue and always too). */
export interface BlockOptions {
  /** Shown when the block's tasks are listed; not a task itself. */
  name?: string;
  /** Every task of the block runs only when this holds too (checked before each task). */
  when?: (ctx: TaskContext) => boolean;
  /** Added to the tags of every task inside. */
  tags?: string[];
  /** The default `become` of the tasks inside (a task's own setting wins). */
  become?: boolean;
}

/** A block as written: its tasks, what to do when one fails, and what to do in any case. */
export interface BlockSpec extends BlockOptions {
  tasks: Step[];
  /** Runs when a task of `tasks` fails; `ctx.failure` names it. A rescued host is not failed. */
  rescue?: Step[];
  /** Runs after `tasks` (and `rescue`), whether they failed or not. */
  always?: Step[];
}

/** A block as data. */
export interface Block {
  readonly kind: "block";
  readonly tasks: readonly Step[];
  readonly rescue: readonly Step[];
  readonly always: readonly Step[];
  readonly options: BlockOptions;
  readonly where: Where;
}

/**
 * Groups tasks with error handling: when a task of `tasks` fails on a host, that host goes on
 * with `rescue` (which sees the failure in `ctx.failure`); `always` runs after both. Blocks
 * nest and may be used in plays and roles.
 *
 * @example
 * block({
 *   name: "new agent config, or the old one back",
 *   tasks: [copy({ dest: "/etc/spire/agent.conf", content: next }), command({ argv: ["spire-agent", "validate"] })],
 *   rescue: [copy({ dest: "/etc/spire/agent.conf", content: previous })],
 *   always: [command({ argv: ["systemctl", "reset-failed", "spire-agent"] })],
 * })
 */
export function block(spec: BlockSpec): Block {
  const { tasks, rescue, always, ...options } = spec;
  return {
    kind: "block",
    tasks,
    rescue: rescue ?? [],
    always: always ?? [],
    options,
    where: callerLocation(),
  };
}
