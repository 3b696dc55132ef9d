/**
 * The one stream every message goes through. The runner emits events; renderers (plain,
 * JSON Lines, listr2) are the only code that prints.
 */

/** What a task did on one host. */
export type TaskStatus = "ok" | "changed" | "skipped" | "failed" | "unreachable";

/** One file's difference, already masked when the task is `noLog`. */
export interface DiffEntry {
  path: string;
  /** Unified diff text of the contents, or a one-line note ("binary files differ"). */
  content?: string;
  /** Attribute changes such as `mode 0644 -> 0640`. */
  attributes?: string[];
  /** The diff is withheld: the task is noLog, or its arguments carry a Secret. */
  hidden?: boolean;
  /** Why it is withheld, when not noLog: "contains a secret". */
  why?: string;
}

export interface HostCounts {
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  unreachable: number;
  /** Failed tasks a block's `rescue` handled: the host went on and is not failed. */
  rescued: number;
  /** Failed tasks with `ignoreErrors`. */
  ignored: number;
}

/** One probe's outcome on one host, as the recap and the HEALTH table list it. */
export interface HealthRow {
  host: string;
  component: string;
  check: string;
  healthy: boolean;
  /** One line: the probe's own detail, the error that stopped it, or "unreachable". */
  detail: string;
}

/** The tasks of one role (or of a play's own tasks) that changed on one host. */
export interface ChangeRow {
  host: string;
  /** The role's name, or `play: <play name>` for tasks written directly in a play. */
  role: string;
  /** Task names, in the order they first changed (in check mode: would change). */
  tasks: string[];
}

export type OmensEvent =
  | { kind: "run-start"; playbook: string; check: boolean; hosts: string[] }
  | { kind: "play-start"; play: string; hosts: string[]; batch?: { index: number; of: number } }
  | { kind: "play-empty"; play: string; pattern: string; warning: string }
  | { kind: "task-start"; play: string; task: string; host: string; handler?: boolean }
  | {
      kind: "task-result";
      play: string;
      task: string;
      host: string;
      status: TaskStatus;
      /** Why it changed, why nothing was needed, or why it was skipped. */
      reason?: string;
      diff?: DiffEntry[];
      error?: string;
      /** For a failed task: where it is written, `file:line:column`. */
      at?: string;
      handler?: boolean;
      /** A loop item's label; the loop's own result (after its items) has none. */
      item?: string;
      /** The inventory host the task ran on, when it was delegated. */
      delegate?: string;
      /** The task failed, and an enclosing block's `rescue` handles it. */
      rescued?: boolean;
      /** The task failed, and `ignoreErrors` lets the host go on. */
      ignored?: boolean;
      /** The task ran on the first host of the batch only (`runOnce`). */
      runOnce?: boolean;
      /** The role the task comes from; tasks written directly in a play have none. */
      role?: string;
      durationMs: number;
      check: boolean;
    }
  | {
      kind: "health";
      host: string;
      component: string;
      check: string;
      healthy: boolean;
      detail: string;
      play: string;
      task: string;
      durationMs: number;
    }
  | {
      kind: "task-retry";
      play: string;
      task: string;
      host: string;
      item?: string;
      /** The attempt that just ended, and how many there may be. */
      attempt: number;
      of: number;
      reason: string;
      delayMs: number;
    }
  | { kind: "command"; host: string; task?: string; command: string }
  | { kind: "command-output"; host: string; stdout: string; stderr: string; rc: number }
  | { kind: "handlers-pending"; host: string; handlers: string[]; reason: string }
  | { kind: "warning"; message: string; host?: string }
  /** Information that is no warning, such as `-v`'s statistics. */
  | { kind: "notice"; message: string }
  | { kind: "play-stopped"; play: string; message: string }
  | {
      kind: "recap";
      hosts: Record<string, HostCounts>;
      check: boolean;
      durationMs: number;
      /** Hosts a stopped rollout never started on. */
      untouched?: string[];
      /** The run was stopped by a signal before it ended. */
      interrupted?: boolean;
      /** Every probe's outcome, when any probe ran. */
      health?: HealthRow[];
      /** Per host and role, the tasks that changed (would change), when any did. */
      changes?: ChangeRow[];
    };

/** Anything that receives events. */
export type EventSink = (event: OmensEvent) => void;

/** A zero recap line for one host. */
export function emptyCounts(): HostCounts {
  return { ok: 0, changed: 0, failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 0 };
}
