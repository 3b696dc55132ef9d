import { taskFinding, taskTitle, type Rule } from "../finding.js";
import { allTasks } from "../model.js";
import { numericModes } from "./numeric-modes.js";

/**
 * What a numeric mode means, and the string to write instead. Digits 0-7 only: the author
 * wrote octal digits, read as decimal. Otherwise it came from an octal literal (0o755 is 493).
 */
export function describeNumericMode(key: string, value: number): string {
  if (!Number.isInteger(value) || value < 0)
    return `${key} is the number ${value}, which is no file mode; write it as a string such as "0640"`;
  const octal = value.toString(8);
  if (/^[0-7]+$/.test(String(value)) && String(value) !== octal)
    return `${key} is the number ${value}, which means 0o${octal}, not 0o${value}; write ${key}: "${value}"`;
  return `${key} is the number ${value} (0o${octal}); modes are strings: write ${key}: "${octal.padStart(4, "0")}"`;
}

export const riskyOctal: Rule = {
  id: "risky-octal",
  rationale:
    "A numeric mode cannot show its base: 2755 is decimal, octal 5303; the engine refuses numbers.",
  level: "error",
  check: (model) =>
    [...allTasks(model)].flatMap(({ item }) =>
      numericModes(item.task).map(({ key, value }) =>
        taskFinding(
          "risky-octal",
          item.task,
          `${taskTitle(item.task, item.label)}: ${describeNumericMode(key, value)}`,
        ),
      ),
    ),
};
