import { taskFinding, type Rule } from "../finding.js";
import { allTasks } from "../model.js";

export const nameMissing: Rule = {
  id: "name-missing",
  rationale: "A task without a name shows only its module and argument in output and reviews.",
  level: "warning",
  check: (model) =>
    [...allTasks(model)]
      .filter(({ item, isHandler }) => !isHandler && !item.task.options.name?.trim())
      .map(({ item }) =>
        taskFinding("name-missing", item.task, `task "${item.label}" has no name`),
      ),
};
