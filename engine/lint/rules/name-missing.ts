import type { Task } from "../../dsl/task.js";
import { hasDeferred } from "../../dsl/deferred.js";
import { taskFinding, type Rule } from "../finding.js";
import { allTasks } from "../model.js";

// Modules whose label shows what runs, not what it is for.
const UNDESCRIBED = new Set(["command", "assert", "loop"]);

export const nameMissing: Rule = {
  id: "name-missing",
  rationale:
    "A command, assert, loop, noLog or deferred-argument task has no label that says what it is for.",
  level: "warning",
  check: (model) =>
    [...allTasks(model)]
      .filter(({ item, isHandler }) => !isHandler && needsName(item.task))
      .map(({ item }) =>
        taskFinding("name-missing", item.task, `task "${item.label}" has no name`),
      ),
};

/**
 * Resource modules are labelled by their resource (`file /etc/spire`, `systemd spire-agent
 * started`), which says what a name would. The others need one.
 */
function needsName(task: Task): boolean {
  if (task.options.name?.trim()) return false;
  return UNDESCRIBED.has(task.module) || task.options.noLog === true || hasDeferred(task.args);
}
