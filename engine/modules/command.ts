import type { Deferrable } from "../dsl/deferred.js";
import { exitCodeMeaning, outputTail } from "../command-error.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import type { FileFact } from "../facts/reader.js";
import { quote, quoteArgv } from "../shell.js";
import { isSecret, type Secret } from "../secret.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition, Plan } from "./types.js";

/** Arguments of the `command` module: exactly one of `argv` and `shell`. */
export interface CommandArgs {
  /** Program and arguments, run without a shell. Secrets are passed but never shown. */
  argv?: (string | Secret)[];
  /** A shell command line, run by /bin/sh. */
  shell?: string;
  /** Skip the command when this path exists (it is the command's own marker). */
  creates?: string;
  /** Skip the command when this path is absent. */
  removes?: string;
  /** Directory to run in. */
  chdir?: string;
  /** Bytes for the command's standard input. */
  stdin?: string | Secret;
}

interface Valid {
  command: string;
  display: string;
  creates?: string;
  removes?: string;
  stdin?: string;
}

/**
 * Runs a command. Without `creates`/`removes` (or `changedWhen`) it always reports changed,
 * and check mode skips it because it cannot know the outcome.
 *
 * @example
 * command({ argv: ["/opt/demo/bin/init"], creates: "/var/lib/demo/.done" })
 */
export function command(args: Deferrable<CommandArgs> & TaskOptions): Task {
  return makeTask("command", args, callerLocation());
}

export const commandModule: ModuleDefinition<Valid, Map<string, FileFact>> = {
  name: "command",
  validate(raw, where) {
    const args = new ArgReader("command", raw, where, [
      "argv",
      "shell",
      "creates",
      "removes",
      "chdir",
      "stdin",
    ]);
    if (args.has("argv") === args.has("shell"))
      args.fail("ARG_CONFLICT", `command: give exactly one of "argv" and "shell"`);
    const { command: line, display } = args.has("argv")
      ? fromArgv(args)
      : { command: args.string("shell"), display: args.string("shell") };
    const chdir = args.optionalString("chdir");
    const prefix = chdir ? `cd ${quote(chdir)} && ` : "";
    const valid: Valid = { command: prefix + line, display: prefix + display };
    const creates = args.optionalString("creates");
    const removes = args.optionalString("removes");
    if (creates) valid.creates = creates;
    if (removes) valid.removes = removes;
    const stdin = args.value("stdin");
    if (stdin !== undefined) valid.stdin = isSecret(stdin) ? stdin.reveal() : args.text("stdin");
    return valid;
  },
  label: (args) =>
    `command ${args.display.length > 60 ? args.display.slice(0, 57) + "..." : args.display}`,
  async facts(args, reader) {
    const paths = [args.creates, args.removes].filter((p): p is string => p !== undefined);
    return paths.length === 0 ? new Map() : reader.stat(paths);
  },
  plan(args, facts, ctx): Plan {
    if (args.creates && facts.get(args.creates)?.kind !== "absent") {
      return { status: "ok", reason: `${args.creates} exists`, ops: [] };
    }
    if (args.removes && facts.get(args.removes)?.kind === "absent") {
      return { status: "ok", reason: `${args.removes} is absent`, ops: [] };
    }
    const exec = {
      kind: "exec" as const,
      command: args.command,
      display: args.display,
      allowFailure: true,
      ...(args.stdin === undefined ? {} : { stdin: args.stdin }),
    };
    const guarded = args.creates !== undefined || args.removes !== undefined;
    if (ctx.check && !guarded)
      return {
        status: "skipped",
        reason: "check mode: no creates/removes, the outcome cannot be known",
        ops: [exec],
      };
    const why = args.creates
      ? `${args.creates} is absent`
      : args.removes
        ? `${args.removes} exists`
        : "commands always run";
    return { status: "changed", reason: ctx.check ? `would run: ${why}` : why, ops: [exec] };
  },
  finish(args, _plan, output) {
    const result = { rc: output.rc, stdout: output.stdout ?? "", stderr: output.stderr ?? "" };
    if (output.rc !== 0) {
      const tail = outputTail({
        stdout: Buffer.from(result.stdout),
        stderr: Buffer.from(result.stderr),
      });
      const reason = `exit code ${output.rc} (${exitCodeMeaning(output.rc ?? -1)}): ${args.display}${tail ? `\n${tail}` : ""}`;
      return { status: "failed", reason, result };
    }
    return { status: "changed", reason: "command ran", result };
  },
};

function fromArgv(args: ArgReader): { command: string; display: string } {
  const argv = args.value("argv");
  if (
    !Array.isArray(argv) ||
    argv.length === 0 ||
    !argv.every((a) => typeof a === "string" || isSecret(a))
  ) {
    args.fail("ARG_TYPE", `command: "argv" must be a non-empty array of strings`);
  }
  const words = argv as (string | Secret)[];
  return {
    command: quoteArgv(words.map((w) => (isSecret(w) ? w.reveal() : w))),
    display: quoteArgv(words.map((w) => (isSecret(w) ? "********" : w))),
  };
}
