import { command, type Task, type TaskContext, type TaskResult } from "../../engine/index.js";
import { quote } from "../../engine/shell.js";
import { missingValueError } from "./errors.js";

/**
 * A health gate: runs `probe` once a second until it succeeds or `seconds` pass. It never
 * changes anything; in check mode it is skipped (the service may not exist yet).
 */
export function healthGate(name: string, probe: string, seconds = 30, unit?: string): Task {
  const journal = unit
    ? `; echo "--- last journal lines of ${unit} ---" >&2; journalctl -u ${quote(unit)} -n 20 --no-pager >&2`
    : "";
  return command({
    name,
    shell: `i=0; until ${probe}; do i=$((i+1)); if [ "$i" -ge ${seconds} ]; then echo "not healthy after ${seconds} s: ${probe.replace(/["\\$`]/g, "")}" >&2${journal}; exit 1; fi; sleep 1; done`,
    changedWhen: () => false,
  });
}

/** The stdout a task registered, or undefined when it was skipped or did not run. */
export function registeredStdout(ctx: TaskContext, name: string): string | undefined {
  const result: TaskResult | undefined = ctx.registered[name];
  if (!result || result.skipped || result.failed) return undefined;
  return typeof result.stdout === "string" ? result.stdout : undefined;
}

/**
 * Text a later task needs from an earlier one. In check mode the earlier task may not have run
 * (it changes things, or its input does not exist yet): a placeholder stands in, so the later
 * task still lists the file it would write. In a real run a missing value is an error.
 */
export function neededStdout(ctx: TaskContext, name: string, what: string): string {
  const text = registeredStdout(ctx, name);
  if (text !== undefined && text.trim() !== "") return text;
  if (ctx.check) return `(${what}: known only in a real run)\n`;
  throw missingValueError(`${what} is missing: the task registering "${name}" gave no output`);
}

/**
 * A failed step's error for the host's summary: its first line (a command's cut to its start)
 * and the end of the rest, where the command's own output says what went wrong.
 */
export function failureEvidence(error: string): string {
  const [head = "", ...rest] = error.split("\n");
  const first = head.length > 160 ? `${head.slice(0, 160)}...` : head;
  const tail = rest.join("\n");
  if (tail === "") return first;
  return tail.length <= 1200 ? `${first}\n${tail}` : `${first}\n...\n${tail.slice(-1200)}`;
}
