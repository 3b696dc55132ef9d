import { fileURLToPath } from "node:url";
import { dirname, sep } from "node:path";
import type { Where } from "../errors.js";
import type { LintSkip } from "../lint/rule-ids.js";

/** What `when`, `changedWhen` and `failedWhen` see about a host. */
export interface TaskContext {
  host: string;
  vars: Readonly<Record<string, unknown>>;
  /** Results of earlier tasks on this host, by their `register` name. */
  registered: Readonly<Record<string, TaskResult>>;
  check: boolean;
}

/** What a task registers: its verdict plus module-specific fields (rc, stdout, stat...). */
export interface TaskResult {
  changed: boolean;
  failed: boolean;
  skipped: boolean;
  reason: string;
  rc?: number;
  stdout?: string;
  stderr?: string;
  [field: string]: unknown;
}

/** A reference to a handler; notifying through it cannot be misspelt. */
export interface HandlerRef {
  readonly kind: "handler-ref";
  readonly id: string;
}

/** Options every task accepts, whatever its module. */
export interface TaskOptions {
  /** Shown in output; defaults to the module and its main argument. */
  name?: string;
  /** Runs the task only when this returns true. */
  when?: (ctx: TaskContext) => boolean;
  /** Stores the task's result under this name for later `when` predicates. */
  register?: string;
  /** Handlers to run at the end of the play if this task changed something. */
  notify?: HandlerRef | string | (HandlerRef | string)[];
  /** Hides diffs, output and arguments of this task in every output. */
  noLog?: boolean;
  /** true: only plan, even in a real run. false: apply even under --check (for read-only probes). */
  checkMode?: boolean;
  /** Decides `changed` from the result instead of the module. */
  changedWhen?: (result: TaskResult, ctx: TaskContext) => boolean;
  /** Decides `failed` from the result instead of the module. */
  failedWhen?: (result: TaskResult, ctx: TaskContext) => boolean;
  /** Runs this task through sudo (or not), overriding the host's setting. */
  become?: boolean;
  /** Continue with the host even if this task fails. */
  ignoreErrors?: boolean;
  /**
   * Runs the task on this inventory host instead, over its connection, with the variables of
   * the host the task is for; the result is registered on (and reported for) that host.
   *
   * @example
   * command({ argv: ["spire-server", "agent", "list"], delegateTo: "spire", register: "agents" })
   */
  delegateTo?: string;
  tags?: string[];
  /**
   * Silences lint rules for this task only, with the reason a reviewer reads. The run ignores it.
   *
   * @example
   * command({ argv: ["/opt/demo/bin/report"], lint: { skip: ["command-changed"], reason: "read-only report" } })
   */
  lint?: LintSkip;
}

const TASK_OPTION_KEYS = [
  "name",
  "when",
  "register",
  "notify",
  "noLog",
  "checkMode",
  "changedWhen",
  "failedWhen",
  "become",
  "ignoreErrors",
  "delegateTo",
  "tags",
  "lint",
] as const satisfies readonly (keyof TaskOptions)[];

/** A task as data: nothing runs until the engine plans it against a host. */
export interface Task {
  readonly kind: "task";
  readonly module: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly options: TaskOptions;
  /** Where the task was written (playbook or role file and line). */
  readonly where: Where;
}

/** Splits a builder's single argument object into module arguments and task options. */
export function makeTask(module: string, input: object, where: Where): Task {
  const args: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    if ((TASK_OPTION_KEYS as readonly string[]).includes(key)) options[key] = value;
    else args[key] = value;
  }
  return { kind: "task", module, args, options: options as TaskOptions, where };
}

const ENGINE_DIR = dirname(dirname(fileURLToPath(import.meta.url))) + sep;

/** The first stack frame outside the engine: the playbook or role line that built a task. */
export function callerLocation(): Where {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, callerLocation);
  const stack = holder.stack?.split("\n").slice(1) ?? [];
  for (const frame of stack) {
    const match = /\(?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?\s*$/.exec(frame);
    if (!match?.[1]) continue;
    const file = match[1].startsWith("file://") ? fileURLToPath(match[1]) : match[1];
    if (file.startsWith(ENGINE_DIR) || file.includes(`${sep}node_modules${sep}`)) continue;
    return { file, line: Number(match[2]), column: Number(match[3]) };
  }
  return {};
}

/** The directory of the file that called into the engine (for role-relative paths). */
export function callerDir(): string | undefined {
  const file = callerLocation().file;
  return file ? dirname(file) : undefined;
}
