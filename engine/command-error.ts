import { OmensError, type Where } from "./errors.js";
import type { ExecResult } from "./connection/types.js";
import { maskSecrets } from "./secret.js";

const STDERR_TAIL_LINES = 12;

/** What an exit code usually means, for the message of a failed command. */
export function exitCodeMeaning(rc: number, signal?: string): string {
  if (signal) return `killed by signal ${signal}`;
  const meanings: Record<number, string> = {
    1: "general error",
    2: "misuse of a shell builtin or bad arguments",
    126: "found but not executable (permission denied)",
    127: "command not found",
    130: "interrupted (SIGINT)",
    137: "killed (SIGKILL, often out of memory)",
    143: "terminated (SIGTERM)",
  };
  if (meanings[rc]) return meanings[rc];
  if (rc > 128 && rc < 160) return `killed by signal ${rc - 128}`;
  return "failed";
}

/** The last lines of a command's stderr (or stdout when stderr is empty), capped. */
export function outputTail(result: Pick<ExecResult, "stdout" | "stderr">): string {
  const text = result.stderr.length > 0 ? result.stderr : result.stdout;
  const lines = text.toString("utf8").trimEnd().split("\n");
  const tail = lines.slice(-STDERR_TAIL_LINES);
  const cut =
    lines.length > tail.length ? `(${lines.length - tail.length} earlier lines not shown)\n` : "";
  return maskSecrets(cut + tail.join("\n"));
}

/** A failed remote command: exit code and its meaning, the command as run, the stderr tail. */
export function commandError(
  what: string,
  command: string,
  result: Pick<ExecResult, "rc" | "stdout" | "stderr"> & { signal?: string },
  where: Where,
  hint?: string,
): OmensError {
  const shown = command.length > 300 ? `${command.slice(0, 300)}...` : command;
  const tail = outputTail(result);
  const message = [
    `${what} failed: exit code ${result.rc} (${exitCodeMeaning(result.rc, result.signal)})`,
    `  command: ${maskSecrets(shown)}`,
    tail ? `  output:\n${tail.replace(/^/gm, "    ")}` : "",
  ]
    .filter(Boolean)
    .join("\n");
  return new OmensError(message, { code: "COMMAND_FAILED", family: "command", where, hint });
}
