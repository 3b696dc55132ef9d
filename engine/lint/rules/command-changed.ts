import { taskFinding, taskTitle, type Rule } from "../finding.js";
import { allTasks } from "../model.js";

export const commandChanged: Rule = {
  id: "command-changed",
  rationale:
    "A command with neither creates/removes nor changedWhen reports changed on every run and is skipped by check mode.",
  level: "error",
  check: (model) =>
    [...allTasks(model)]
      .filter(({ item, isHandler }) => !isHandler && item.task.module === "command")
      .filter(({ item }) => {
        const { args, options } = item.task;
        return args.creates === undefined && args.removes === undefined && !options.changedWhen;
      })
      .map(({ item }) =>
        taskFinding(
          "command-changed",
          item.task,
          `${taskTitle(item.task, item.label)} has neither creates/removes nor changedWhen: it reports changed on every run, and check mode cannot tell what it would do`,
        ),
      ),
};
