import { describeError, OmensError, toOmensError, type Where } from "../errors.js";
import type { DiffEntry, TaskStatus } from "../events.js";
import { HostReader } from "../facts/reader.js";
import type { TaskContext, TaskResult } from "../dsl/task.js";
import type { Plan, PlanContext } from "../modules/types.js";
import { carriesSecret, maskSecrets, SECRET_DIFF } from "../secret.js";
import { resolveDeferred } from "../dsl/deferred.js";
import { applyOps } from "./apply.js";
import { maskArgumentValues } from "./no-log.js";
import type { CompiledTask } from "./compile.js";
import type { HostState, RunOptions } from "./run.js";

/** What one task did on one host. */
export interface TaskOutcome {
  status: TaskStatus;
  /** Failed, but `ignoreErrors` lets the host go on. */
  ignored?: boolean;
}

const HIDDEN = "output hidden (noLog)";

/**
 * Plans one task from the host's facts, applies the plan unless in check mode, registers the
 * result, queues notified handlers and reports the outcome.
 */
export async function runTask(
  state: HostState,
  task: CompiledTask,
  play: string,
  options: RunOptions,
  handler = false,
): Promise<TaskOutcome> {
  const started = Date.now();
  const host = state.host.name;
  const where: Where = { ...task.task.where, host, task: task.name };
  const check = task.task.options.checkMode ?? options.check;
  const target = task.task.options.delegateTo;
  const delegatedTo = target === undefined || target === host ? undefined : target;
  const context: TaskContext = { host, vars: task.vars, registered: state.registered, check };
  options.sink({
    kind: "task-start",
    play,
    task: task.name,
    host,
    ...(handler ? { handler } : {}),
  });
  const report = (
    status: TaskStatus,
    reason: string,
    extra: { diff?: DiffEntry[]; error?: string } = {},
  ) => {
    options.sink({
      kind: "task-result",
      play,
      task: task.name,
      host,
      status,
      reason,
      ...extra,
      ...(handler ? { handler } : {}),
      ...(delegatedTo === undefined ? {} : { delegatedTo }),
      durationMs: Date.now() - started,
      check,
    });
  };
  try {
    if (task.task.options.when && !task.task.options.when(context)) {
      register(state, task, {
        changed: false,
        failed: false,
        skipped: true,
        reason: "condition was false",
      });
      report("skipped", "when: condition was false");
      return { status: "skipped" };
    }
    const outcome = await planAndApply(state, task, context, where, options);
    return finishTask(state, task, outcome, context, report);
  } catch (error) {
    const err =
      error instanceof OmensError
        ? error.at(where)
        : toOmensError(error, { code: "TASK_CRASHED", family: "task", where });
    const status = err.family === "connection" ? "unreachable" : "failed";
    const message = task.task.options.noLog
      ? maskSecrets(`${err.code}: ${err.message.split("\n")[0]}`)
      : describeError(err);
    if (status === "unreachable") state.status = "unreachable";
    register(state, task, { changed: false, failed: true, skipped: false, reason: message });
    report(status, status === "unreachable" ? "host became unreachable" : "task failed", {
      error: message,
    });
    return task.task.options.ignoreErrors && status === "failed"
      ? { status, ignored: true }
      : { status };
  }
}

interface Applied {
  plan: Plan;
  result: TaskResult;
  status: Plan["status"];
  reason: string;
}

async function planAndApply(
  state: HostState,
  task: CompiledTask,
  context: TaskContext,
  where: Where,
  options: RunOptions,
): Promise<Applied> {
  const connection = await taskConnection(state, task, where, options);
  const args = taskArgs(task, context, where);
  const become = task.task.options.become;
  const planContext: PlanContext = {
    host: context.host,
    vars: task.vars,
    registered: state.registered,
    check: context.check,
    diff: options.diff,
    where,
    task: task.name,
    baseDir: task.baseDir,
  };
  const reader = new HostReader(connection, where, become);
  const facts = await task.module.facts(args, reader, planContext);
  const plan = task.module.plan(args, facts, planContext);
  const runs = plan.status === "changed" && (!context.check || plan.readOnly === true);
  let status = plan.status;
  let reason = plan.reason;
  if (context.check && !runs) {
    const stale = reader.paths.find((p) => dependsOnSimulated(p, state.simulated));
    if (stale && plan.status === "failed") {
      status = "skipped";
      reason = `check mode: ${stale} would be changed by an earlier task, so this task cannot be planned yet (${plan.reason})`;
    }
    // Paths of a delegated task are another host's: they do not make this host's facts stale.
    if (task.task.options.delegateTo === undefined)
      plan.ops.forEach((op) => "path" in op && state.simulated.add(op.path));
  }
  let extra: Record<string, unknown> = plan.result ?? {};
  if (runs) {
    const noLog = task.task.options.noLog === true;
    const output = await applyOps(connection, plan.ops, where, become, {
      command: (text) =>
        options.verbosity >= 1 &&
        options.sink({
          kind: "command",
          host: context.host,
          task: task.name,
          command: noLog ? HIDDEN : text,
        }),
      output: (rc, stdout, stderr) =>
        options.verbosity >= 3 &&
        !noLog &&
        options.sink({ kind: "command-output", host: context.host, rc, stdout, stderr }),
    });
    const finished = task.module.finish?.(args, plan, output);
    if (finished) ({ status, reason } = finished);
    extra = { ...extra, ...(finished?.result ?? {}) };
  }
  const result: TaskResult = {
    changed: status === "changed",
    failed: status === "failed",
    skipped: status === "skipped",
    reason,
    ...extra,
  };
  return { plan, result, status, reason };
}

/** The connection a task runs over: its host's, or the one it delegates to. */
async function taskConnection(
  state: HostState,
  task: CompiledTask,
  where: Where,
  options: RunOptions,
) {
  const target = task.task.options.delegateTo;
  if (target === undefined || target === state.host.name) {
    if (state.connection) return state.connection;
    throw new OmensError("no connection for a running task", { code: "BUG", family: "bug", where });
  }
  if (!options.delegate)
    throw new OmensError("delegateTo used outside a run", { code: "BUG", family: "bug", where });
  try {
    return await options.delegate(target);
  } catch (error) {
    // The delegate's failure is this task's failure: the host itself is still reachable.
    throw new OmensError(
      `cannot reach ${target}, which this task delegates to: ${(error as Error).message}`,
      { code: "DELEGATE_UNREACHABLE", family: "task", where, cause: error },
    );
  }
}

/** The task's arguments for this host: deferred values computed now, then validated. */
function taskArgs(task: CompiledTask, context: TaskContext, where: Where): unknown {
  if (!task.deferred) return task.args;
  let raw: Record<string, unknown>;
  try {
    raw = resolveDeferred(task.task.args, context);
  } catch (error) {
    throw new OmensError(`a deferred argument failed: ${(error as Error).message}`, {
      code: "DEFERRED_FAILED",
      family: "task",
      where,
      cause: error,
    });
  }
  try {
    return task.module.validate(raw, where);
  } catch (error) {
    throw task.task.options.noLog === true ? maskArgumentValues(error, raw) : error;
  }
}

function finishTask(
  state: HostState,
  task: CompiledTask,
  applied: Applied,
  context: TaskContext,
  report: (
    status: TaskStatus,
    reason: string,
    extra?: { diff?: DiffEntry[]; error?: string },
  ) => void,
): TaskOutcome {
  const { result } = applied;
  const options = task.task.options;
  const judged =
    applied.status !== "skipped" &&
    !(context.check && result.rc === undefined && options.changedWhen);
  if (judged && options.changedWhen) result.changed = options.changedWhen(result, context);
  if (judged && options.failedWhen) result.failed = options.failedWhen(result, context);
  const status: TaskStatus = result.failed
    ? "failed"
    : result.skipped
      ? "skipped"
      : result.changed
        ? "changed"
        : "ok";
  register(state, task, result);
  if (status === "changed") task.notify.forEach((id) => state.notified.add(id));
  const diff =
    applied.plan.diff &&
    maskDiff(applied.plan.diff, options.noLog === true, carriesSecret(task.task.args));
  const reason = options.noLog
    ? status === "failed"
      ? "task failed; details hidden (noLog)"
      : (applied.reason.split("\n")[0] ?? "")
    : applied.reason;
  if (status === "failed") {
    report("failed", "task failed", {
      error: options.noLog ? maskSecrets(reason) : reason,
      ...(diff ? { diff } : {}),
    });
    return options.ignoreErrors ? { status, ignored: true } : { status };
  }
  report(status, reason, diff && status === "changed" ? { diff } : {});
  return { status };
}

function maskDiff(diff: DiffEntry[], noLog: boolean, secret: boolean): DiffEntry[] {
  if (noLog) return diff.map((d) => ({ path: d.path, hidden: true }));
  if (!secret) return diff;
  return diff.map((d) => ({
    path: d.path,
    ...(d.attributes ? { attributes: d.attributes } : {}),
    hidden: true,
    why: d.why ?? SECRET_DIFF,
  }));
}

function register(state: HostState, task: CompiledTask, result: TaskResult) {
  const name = task.task.options.register;
  if (name) state.registered[name] = result;
}

/** True when a path, or a folder above it, is one an earlier check-mode task would change. */
function dependsOnSimulated(path: string, simulated: Set<string>): boolean {
  for (let p = path; p.length > 1; p = p.slice(0, Math.max(1, p.lastIndexOf("/")))) {
    if (simulated.has(p)) return true;
  }
  return false;
}
