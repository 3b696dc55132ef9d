import type { Where } from "../errors.js";
import type { Play } from "../dsl/playbook.js";
import type { Task } from "../dsl/task.js";
import type { LintRuleId } from "./rule-ids.js";
import type { LintModel } from "./model.js";

/** How bad a finding is: errors fail the lint run (exit 2), warnings are only shown. */
export type LintLevel = "error" | "warning";

/** One problem lint found, at a file:line:column. */
export interface Finding {
  rule: LintRuleId;
  message: string;
  where: Where;
  /** Overrides the rule's level for this finding (e.g. a skip that silences nothing). */
  level?: LintLevel;
  /** The hosts it holds for, when it depends on a host's variables. */
  hosts?: string[];
  /** The task it is about: its `lint.skip` may silence the finding. */
  task?: Task;
  /** The play it is about (play-level rules): its `lint.skip` may silence the finding. */
  play?: Play;
}

/** A lint rule: a stable id, why it exists in one line, and the check itself. */
export interface Rule {
  id: LintRuleId;
  rationale: string;
  /** "error": the run would fail or do harm; "warning": it would run, but badly. */
  level: LintLevel;
  /**
   * How one finding is silenced: by the task's (or play's) `lint.skip` (the default), by a
   * comment on the inventory line it points at, or either, as the finding is located.
   */
  silencedBy?: "task" | "inventory" | "task or inventory";
  check(model: LintModel): Finding[];
}

/** A finding about a task, located at the line that built it. */
export function taskFinding(
  rule: LintRuleId,
  task: Task,
  message: string,
  hosts?: string[],
): Finding {
  return { rule, message, where: task.where, task, ...(hosts ? { hosts } : {}) };
}

/** `task "name"` for messages: its own name, or the engine's label for it. */
export function taskTitle(task: Task, label: string): string {
  return `task "${task.options.name ?? label}"`;
}

/** "file:line:column" of a place, the key that identifies a task across hosts. */
export function placeKey(where: Where): string {
  return `${where.file ?? "?"}:${where.line ?? 0}:${where.column ?? 0}`;
}
