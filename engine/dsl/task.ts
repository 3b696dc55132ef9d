import { fileURLToPath } from "node:url";
import { dirname, sep } from "node:path";
import { taskError, type Where } from "../errors.js";
import type { LintSkip } from "../lint/rule-ids.js";

import type { HostFacts } from "../facts/gathered.js";

/** What `when`, `changedWhen`, `failedWhen` and `until` see about a host. */
export interface TaskContext {
  host: string;
  vars: Readonly<Record<string, unknown>>;
  /** Results of earlier tasks on this host, by their `register` name. */
  registered: Readonly<Record<string, TaskResult>>;
  check: boolean;
  /**
   * The host's gathered facts (OS, init system, addresses, TPM, packages). Gathered by one
   * remote command the first time any task or predicate of the run reads them on this host.
   */
  readonly facts: HostFacts;
  /** Inside a `rescue` section: the task that failed and its error; elsewhere `{ kind: "none" }`. */
  failure: Failure;
  /**
   * The typed result an earlier task registered on this host, or undefined if it has not run.
   *
   * @example
   * const probe = stat({ path: "/etc/spire/agent.conf" });
   * command({ argv: ["true"], when: (ctx) => ctx.result(probe)?.stat.exists === true });
   */
  result<R extends TaskResult>(task: Task<R>): R | undefined;
}

/** The failure a `rescue` section handles. */
export type Failure =
  | { kind: "none" }
  | {
      kind: "failed";
      /** The failed task's name. */
      task: string;
      /** Its error message, as shown in the output. */
      error: string;
      /** The failed task's registered result. */
      result: TaskResult;
    };

/** What a task registers: its verdict plus module-specific fields (rc, stdout, stat...). */
export interface TaskResult {
  changed: boolean;
  failed: boolean;
  skipped: boolean;
  reason: string;
  rc?: number;
  stdout?: string;
  stderr?: string;
  /** Attempts made when the task has `retries`/`until`. */
  attempts?: number;
  [field: string]: unknown;
}

/** A reference to a handler; notifying through it cannot be misspelt. */
export interface HandlerRef {
  readonly kind: "handler-ref";
  readonly id: string;
}

/** Options every task accepts, whatever its module; `R` is what the task registers. */
export interface TaskOptions<R extends TaskResult = TaskResult> {
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
  changedWhen?: (result: R, ctx: TaskContext) => boolean;
  /** Decides `failed` from the result instead of the module. */
  failedWhen?: (result: R, ctx: TaskContext) => boolean;
  /** Runs this task through sudo (or not), overriding the host's setting. */
  become?: boolean;
  /** Continue with the host even if this task fails. */
  ignoreErrors?: boolean;
  /** Selects the task with `--tags` / `--skip-tags`; `always` and `never` are special. */
  tags?: string[];
  /**
   * A precondition of the tasks after it, such as a check that refuses a run that would undo
   * a migration: it runs whatever `--tags`, `--skip-tags` and `--start-at-task` select, and
   * `--step` does not ask about it.
   */
  guard?: boolean;
  /**
   * Repeats the task until this holds for its result (at most `retries` more times, `delay`
   * seconds apart). Without it, `retries` repeats a task until it does not fail.
   *
   * @example
   * command({ argv: ["/opt/spire/bin/spire-server", "healthcheck"], retries: 10, delay: 2, until: (r) => r.rc === 0 })
   */
  until?: (result: R, ctx: TaskContext) => boolean;
  /** How many times to retry (default 3 when `until` is given). */
  retries?: number;
  /** Seconds between attempts (default 5). */
  delay?: number;
  /** Runs on the first host of the batch only; its result is registered on every host. */
  runOnce?: boolean;
  /**
   * Runs the task on another inventory host (connecting to it) with this host's variables.
   *
   * @example
   * command({ argv: ["spire-server", "entry", "create", "-parentID", `spiffe://funlab.casa/${host}`], delegateTo: "spire" })
   */
  delegateTo?: string | ((ctx: TaskContext) => string);
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
  "tags",
  "guard",
  "until",
  "retries",
  "delay",
  "runOnce",
  "delegateTo",
  "lint",
] as const satisfies readonly (keyof TaskOptions)[];

/** A task as data: nothing runs until the engine plans it against a host. */
export interface Task<R extends TaskResult = TaskResult> {
  readonly kind: "task";
  readonly module: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly options: TaskOptions;
  /** Where the task was written (playbook or role file and line). */
  readonly where: Where;
  /** Set by `loop`: the items and the task each one builds. */
  readonly loop?: LoopSpec;
  /** Never set: carries the type of the registered result, for `ctx.result(task)`. */
  readonly resultType?: R;
}

/** How a `loop` task gets its items and turns each into a task. */
export interface LoopSpec {
  readonly items: readonly unknown[] | ((ctx: TaskContext) => readonly unknown[]);
  readonly build: (item: unknown, index: number) => Task;
  readonly label?: (item: unknown, index: number) => string;
}

/** Splits a builder's single argument object into module arguments and task options. */
export function makeTask<R extends TaskResult = TaskResult>(
  module: string,
  input: object,
  where: Where,
): Task<R> {
  const args: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    if ((TASK_OPTION_KEYS as readonly string[]).includes(key)) options[key] = value;
    else args[key] = value;
  }
  return { kind: "task", module, args, options: options as TaskOptions, where };
}

/**
 * A context for predicates run outside a task run (lint, unit tests of modules): facts and
 * typed results are not available there, and reading facts says so.
 */
export function contextWithoutFacts(base: {
  host: string;
  vars: Readonly<Record<string, unknown>>;
  registered: Readonly<Record<string, TaskResult>>;
  check: boolean;
}): TaskContext {
  return {
    ...base,
    failure: { kind: "none" },
    get facts(): HostFacts {
      throw taskError("FACTS_UNAVAILABLE", "host facts are only available while a play runs");
    },
    result: () => undefined,
  };
}

const ENGINE_DIR = dirname(dirname(fileURLToPath(import.meta.url))) + sep;

/** The first stack frame outside the engine: the playbook or role line that built a task. */
export function callerLocation(): Where {
  return callerFrames(callerLocation).find((frame) => !frame.engine)?.where ?? {};
}

/**
 * The stack frames above `below` that name a file (built-ins such as String() name none),
 * each marked when it is the engine's or a package's rather than a playbook's or role's.
 */
export function callerFrames(below: () => unknown): { where: Where; engine: boolean }[] {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, below);
  return (holder.stack?.split("\n").slice(1) ?? []).flatMap((frame) => {
    const match = /\(?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?\s*$/.exec(frame);
    if (!match?.[1]) return [];
    const file = match[1].startsWith("file://") ? fileURLToPath(match[1]) : match[1];
    const engine = file.startsWith(ENGINE_DIR) || file.includes(`${sep}node_modules${sep}`);
    return [{ where: { file, line: Number(match[2]), column: Number(match[3]) }, engine }];
  });
}

/** The directory of the file that called into the engine (for role-relative paths). */
export function callerDir(): string | undefined {
  const file = callerLocation().file;
  return file ? dirname(file) : undefined;
}
