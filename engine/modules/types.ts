import type { Where } from "../errors.js";
import type { DiffEntry } from "../events.js";
import type { HostReader } from "../facts/reader.js";
import type { TaskContext, TaskResult } from "../dsl/task.js";

/** A change to make on a host. Ops are data: check mode plans them and applies none. */
export type Op =
  | {
      kind: "write";
      path: string;
      content: Buffer;
      /** Permission bits; undefined keeps the existing file's (or the umask's for a new file). */
      mode?: number;
      owner?: string;
      group?: string;
      /** A command run on the written temp file (`%s`) before it replaces `path`. */
      validate?: string;
    }
  | { kind: "mkdir"; path: string; mode?: number; owner?: string; group?: string }
  | { kind: "chmod"; path: string; mode: number }
  | { kind: "chown"; path: string; owner?: string; group?: string; followLinks: boolean }
  | { kind: "remove"; path: string }
  | { kind: "symlink"; path: string; target: string; owner?: string; group?: string }
  | { kind: "touch"; path: string }
  | ExecOp
  /** A command that creates or changes `path`, so check mode knows later facts may differ. */
  | (ExecOp & { path: string });

/** A remote command a plan runs. */
export interface ExecOp {
  kind: "exec";
  command: string;
  /** Shown in output instead of the command when it carries secrets. */
  display?: string;
  stdin?: Buffer | string;
  /** A non-zero exit is a failure unless the module decides (command uses failedWhen). */
  allowFailure?: boolean;
}

/** What a module decided for one host. */
export interface Plan {
  status: "ok" | "changed" | "skipped" | "failed";
  /** Why it changes, why nothing is needed, why it was skipped or why it failed. */
  reason: string;
  ops: Op[];
  diff?: DiffEntry[];
  /** Values the task registers, known at plan time (e.g. stat results). */
  result?: Record<string, unknown>;
  /** Runs its ops for real even in check mode: they only read (e.g. a probe command). */
  readOnly?: boolean;
}

/** Everything a module's plan may look at besides its arguments and facts. */
export interface PlanContext {
  host: string;
  vars: Record<string, unknown>;
  /** Results registered by earlier tasks on this host. */
  registered: Record<string, TaskResult>;
  /** Whether this task only plans (global --check, unless the task overrides it). */
  check: boolean;
  /** Whether the user asked for diffs (old contents are only fetched then). */
  diff: boolean;
  where: Where;
  task: string;
  /** Directory that relative `src` paths are resolved against (a role's or playbook's). */
  baseDir: string;
  /** What the task's predicates see (facts, registered results), for modules that run them. */
  taskContext?: TaskContext;
}

/** The output of the ops a task ran; command-like modules register it. */
export interface ApplyOutput {
  rc?: number;
  stdout?: string;
  stderr?: string;
}

/**
 * One module per resource kind. `facts` only reads from the host; `plan` is pure and decides
 * the ops; `finish` (optional) turns the applied output into the task's final verdict.
 */
export interface ModuleDefinition<Args, Facts> {
  name: string;
  /** Checks and normalises raw arguments; runs at load time, before any host is contacted. */
  validate(raw: Record<string, unknown>, where: Where): Args;
  /**
   * Checks the controller files the task reads (templates, sources) once their folder is known,
   * still before any host is contacted, so a broken file is bad input rather than a failed task.
   */
  validateSources?(args: Args, baseDir: string, where: Where): void;
  /** A short label for the task when it has no name, e.g. "file /etc/spire". */
  label(args: Args): string;
  facts(args: Args, reader: HostReader, ctx: PlanContext): Promise<Facts>;
  plan(args: Args, facts: Facts, ctx: PlanContext): Plan;
  finish?(
    args: Args,
    plan: Plan,
    output: ApplyOutput,
  ): { status: Plan["status"]; reason: string; result?: Record<string, unknown> };
}

/** A module whose argument and fact types have been erased, for the registry. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyModule = ModuleDefinition<any, any>;
