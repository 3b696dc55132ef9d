import type { HandlerRef } from "../../dsl/task.js";
import type { LintTask } from "../expand.js";
import { placeKey, taskFinding, taskTitle, type Finding, type Rule } from "../finding.js";
import { allRuns, type LintModel } from "../model.js";

export const handlerUndefined: Rule = {
  id: "handler-undefined",
  rationale: "Notifying a handler the play does not define fails the run before any host.",
  level: "error",
  check: (model) => notifications(model).flatMap((n) => (n.found ? [] : [n.finding])),
};

export const handlerUnused: Rule = {
  id: "handler-unused",
  rationale: "A handler no task notifies never runs: a restart that was meant to happen does not.",
  level: "warning",
  check: (model) => {
    const notified = new Set(notifications(model).flatMap((n) => (n.found ? [n.found] : [])));
    const unused = new Map<string, Finding>();
    for (const run of allRuns(model))
      for (const plan of run.hosts)
        for (const handler of plan.handlers) {
          const key = handlerKey(run.index, handler);
          if (notified.has(key) || unused.has(key)) continue;
          const name = handler.handler?.name ?? handler.label;
          const message = `handler "${name}" is defined but no task notifies it`;
          unused.set(key, taskFinding("handler-unused", handler.task, message));
        }
    return [...unused.values()];
  },
};

interface Notification {
  /** The key of the handler it reached, if any. */
  found?: string;
  finding: Finding;
}

/**
 * Every notify of every task, resolved as the runner does: by ref, name, id or key. A fixed
 * loop notifies as a whole, so its own `notify` is read besides its items'.
 */
function notifications(model: LintModel): Notification[] {
  const result: Notification[] = [];
  for (const run of allRuns(model))
    for (const plan of run.hosts)
      for (const item of [...plan.tasks, ...plan.loops]) {
        const notify = item.task.options.notify;
        if (notify === undefined) continue;
        for (const ref of Array.isArray(notify) ? notify : [notify]) {
          const handler = resolve(ref, plan.handlers);
          result.push({
            ...(handler ? { found: handlerKey(run.index, handler) } : {}),
            finding: undefinedFinding(item, ref, plan.handlers),
          });
        }
      }
  return result;
}

function resolve(ref: HandlerRef | string, handlers: LintTask[]): LintTask | undefined {
  if (typeof ref !== "string") return handlers.find((h) => h.handler?.id === ref.id);
  return handlers.find(
    (h) => h.handler?.name === ref || h.handler?.id === ref || h.handler?.id.endsWith(`:${ref}`),
  );
}

/** A handler is the same across hosts when built at the same line of the same play. */
function handlerKey(playIndex: number, handler: LintTask): string {
  return `${playIndex}|${handler.handler?.id}|${placeKey(handler.task.where)}`;
}

function undefinedFinding(item: LintTask, ref: HandlerRef | string, handlers: LintTask[]) {
  const defined = [...new Set(handlers.map((h) => `"${h.handler?.name}"`))].join(", ") || "none";
  const what = typeof ref === "string" ? `"${ref}"` : `handler ${ref.id}`;
  return taskFinding(
    "handler-undefined",
    item.task,
    `${taskTitle(item.task, item.label)} notifies ${what}, but the play defines no such handler (defined: ${defined})`,
  );
}
