import { exitCodeMeaning } from "../command-error.js";
import { inputError } from "../errors.js";
import {
  callerLocation,
  makeTask,
  type Task,
  type TaskOptions,
  type TaskResult,
} from "../dsl/task.js";
import { quoteArgv } from "../shell.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition, Plan } from "./types.js";

/** What a probe's command printed and how it exited, as `healthy` and `detail` see it. */
export interface ProbeOutput {
  rc: number;
  stdout: string;
  stderr: string;
}

/** Arguments of the `probe` module: exactly one of `shell` and `argv`. */
export interface ProbeArgs {
  /** What is checked, e.g. "sshd" or "spire-server"; the HEALTH table's first column after the host. */
  component: string;
  /** Which check of the component, e.g. "active" or "healthcheck". */
  check: string;
  /** A shell command line, run by /bin/sh. */
  shell?: string;
  /** Program and arguments, run without a shell. */
  argv?: string[];
  /** Decides health from the output; default: exit code 0. */
  healthy?: (output: ProbeOutput) => boolean;
  /** The one line shown in the HEALTH table; default: the output's last non-empty line. */
  detail?: (output: ProbeOutput) => string;
}

/** What a probe registers. */
export interface ProbeResult extends TaskResult {
  rc: number;
  stdout: string;
  stderr: string;
  component: string;
  check: string;
  healthy: boolean;
  detail: string;
}

/** Task options of a probe: health is decided by `healthy`, so there is no changed/failedWhen. */
export type ProbeOptions = Omit<TaskOptions<ProbeResult>, "changedWhen" | "failedWhen">;

/** The longest detail kept, in characters. */
export const DETAIL_MAX = 200;

interface Valid {
  component: string;
  check: string;
  command: string;
  healthy: (output: ProbeOutput) => boolean;
  detail?: (output: ProbeOutput) => string;
}

/**
 * A read-only health check: runs its command in real runs and under `--check` alike, never
 * reports changed, and an unhealthy result does not stop the host (`ignoreErrors` defaults to
 * true). Each probe is a row of the HEALTH table after the recap, and a `health` event.
 *
 * @example
 * probe({ component: "sshd", check: "active", argv: ["systemctl", "is-active", "ssh"] })
 */
export function probe(args: ProbeArgs & ProbeOptions): Task<ProbeResult> {
  const where = callerLocation();
  for (const key of ["changedWhen", "failedWhen"])
    if (key in args)
      throw inputError(
        "playbook",
        "ARG_UNKNOWN",
        `probe: "${key}" is not accepted; a probe's health is decided by "healthy"`,
        where,
      );
  return makeTask<ProbeResult>("probe", { ignoreErrors: true, ...args }, where);
}

export const probeModule: ModuleDefinition<Valid, null> = {
  name: "probe",
  validate(raw, where) {
    const args = new ArgReader("probe", raw, where, [
      "component",
      "check",
      "shell",
      "argv",
      "healthy",
      "detail",
    ]);
    if (args.has("argv") === args.has("shell"))
      args.fail("ARG_CONFLICT", `probe: give exactly one of "argv" and "shell"`);
    const command = args.has("argv")
      ? quoteArgv(args.stringList("argv") as string[])
      : args.string("shell");
    return {
      component: args.string("component"),
      check: args.string("check"),
      command,
      healthy: optionalFunction(args, "healthy") ?? ((output) => output.rc === 0),
      ...optionalDetail(optionalFunction(args, "detail")),
    };
  },
  label: (args) => `probe ${args.component} ${args.check}`,
  facts: async () => null,
  // The command only reads, so it runs under --check too (readOnly); finish() judges it.
  plan: (args): Plan => ({
    status: "changed",
    reason: `probing ${args.component} ${args.check}`,
    ops: [{ kind: "exec", command: args.command, allowFailure: true }],
    readOnly: true,
  }),
  finish(args, _plan, applied) {
    const output = {
      rc: applied.rc ?? -1,
      stdout: applied.stdout ?? "",
      stderr: applied.stderr ?? "",
    };
    const verdict = judgeProbe(args, output);
    const result = { ...output, component: args.component, check: args.check, ...verdict };
    const reason = verdict.healthy
      ? `healthy: ${verdict.detail}`
      : `unhealthy: ${args.component} ${args.check}: ${verdict.detail}`;
    return { status: verdict.healthy ? "ok" : "failed", reason, result };
  },
};

/** Health and detail of one probe's output; a throwing callback makes the probe unhealthy. */
export function judgeProbe(
  args: Pick<Valid, "healthy" | "detail">,
  output: ProbeOutput,
): { healthy: boolean; detail: string } {
  let healthy: boolean;
  try {
    healthy = args.healthy(output) === true;
  } catch (error) {
    return { healthy: false, detail: capDetail(`healthy() threw: ${String(error)}`) };
  }
  try {
    const detail = args.detail ? String(args.detail(output)) : defaultDetail(output, healthy);
    return { healthy, detail: capDetail(detail) };
  } catch (error) {
    return { healthy, detail: capDetail(`detail() threw: ${String(error)}`) };
  }
}

/**
 * The last non-empty line of stdout (of stderr first when unhealthy, where the reason usually
 * is), or the exit code and its meaning when the command printed nothing.
 */
export function defaultDetail(output: ProbeOutput, healthy: boolean): string {
  const streams = healthy ? [output.stdout, output.stderr] : [output.stderr, output.stdout];
  for (const text of streams) {
    const line = lastLine(text);
    if (line !== undefined) return line;
  }
  return output.rc === 0 ? "exit code 0" : `exit code ${output.rc} (${exitCodeMeaning(output.rc)})`;
}

/** One line of at most {@link DETAIL_MAX} characters. */
export function capDetail(text: string): string {
  const line = text.replace(/\s*\n\s*/g, " ").trim();
  return line.length > DETAIL_MAX ? `${line.slice(0, DETAIL_MAX - 3)}...` : line;
}

function lastLine(text: string): string | undefined {
  return text
    .split("\n")
    .map((l) => l.trim())
    .findLast((l) => l !== "");
}

function optionalFunction(
  args: ArgReader,
  key: "healthy" | "detail",
): ((output: ProbeOutput) => never) | undefined {
  const value = args.value(key);
  if (value !== undefined && typeof value !== "function")
    args.fail("ARG_TYPE", `probe: "${key}" must be a function of { rc, stdout, stderr }`);
  return value as ((output: ProbeOutput) => never) | undefined;
}

function optionalDetail(detail: ((output: ProbeOutput) => string) | undefined) {
  return detail === undefined ? {} : { detail };
}
