import type { Task } from "../../dsl/task.js";

// Apart from risky-octal.ts, which reads the lint model: expand.ts builds that model and needs
// this too, so one module for both made an import cycle.

/** Mode arguments of a task given as numbers: `mode`, or any argument named `...Mode`. */
export function numericModes(task: Task): { key: string; value: number }[] {
  return Object.entries(task.args)
    .filter(([key, value]) => /^mode$|Mode$/.test(key) && typeof value === "number")
    .map(([key, value]) => ({ key, value: value as number }));
}
