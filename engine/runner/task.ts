import { setTimeout as sleep } from "node:timers/promises";
import { resolveDeferred } from "../dsl/deferred.js";
import { maskArgumentValues } from "./no-log.js";
import { describeError, OmensError, taskError, toOmensError, type Where } from "../errors.js";
import type { DiffEntry, TaskStatus } from "../events.js";
import { HostReader } from "../facts/reader.js";
import type { Connection } from "../connection/types.js";
import type { Failure, TaskContext, TaskResult } from "../dsl/task.js";
import type { Plan, PlanContext } from "../modules/types.js";
import { carriesSecret, maskSecrets, SECRET_DIFF } from "../secret.js";
import { capDetail } from "../modules/probe.js";
import { applyOps } from "./apply.js";
import type { CompiledItem, CompiledTask } from "./compile.js";
import { factsView, withFacts } from "./facts.js";
import type { HostState, RunOptions } from "./run.js";

/** What one task did on one host. */
export interface TaskOutcome {
  status: TaskStatus;
  /** Failed, but `ignoreErrors` lets the host go on. */
  ignored?: boolean;
  /** What the task registered. */
  result: TaskResult;
  /** The error shown for a failed task. */
  error?: string;
}

/** How a task is being run: as a handler, inside a rescue, delegated... */
export interface TaskRun {
  handler?: boolean;
  /** What `ctx.failure` shows (inside `rescue` and `always`). */
  failure?: Failure;
  /** A failure of this task would be handled by an enclosing block's `rescue`. */
  rescuable?: boolean;
  /** Finds another inventory host and connects to it, for `delegateTo`. */
  delegate?: (name: string, where: Where) => Promise<HostState>;
  /** The task runs for the whole batch on this host (`runOnce`). */
  runOnce?: boolean;
}

/** The outcome of one attempt (or of a whole loop) before it is registered and reported. */
interface Verdict {
  status: TaskStatus;
  result: TaskResult;
  reason: string;
  diff?: DiffEntry[];
  error?: string;
}

/** `file:line:column` of a task, for the failures whose message does not say where it is. */
function placeOf(where: Where): string | undefined {
  if (!where.file) return undefined;
  return [where.file, where.line, where.column].filter((part) => part !== undefined).join(":");
}

const HIDDEN = "output hidden (noLog)";
const NO_FAILURE: Failure = { kind: "none" };

/**
 * Runs one task on one host: its conditions, then (per item, for a loop) plan from facts and
 * apply unless in check mode, with retries; registers the result, queues notified handlers
 * and reports the outcome.
 */
export async function runTask(
  state: HostState,
  task: CompiledTask,
  play: string,
  options: RunOptions,
  run: TaskRun = {},
): Promise<TaskOutcome> {
  const started = Date.now();
  const host = state.host.name;
  const where: Where = { ...task.task.where, host, task: task.name };
  const context = taskContext(state, task, options, run.failure ?? NO_FAILURE);
  options.sink({ kind: "task-start", play, task: task.name, host, ...flags(run) });
  let delegate: string | undefined;
  const written = placeOf(task.task.where);
  const report = (verdict: Verdict, item?: string) =>
    options.sink({
      kind: "task-result",
      play,
      task: task.name,
      host,
      status: verdict.status,
      reason: verdict.reason,
      ...(verdict.diff ? { diff: verdict.diff } : {}),
      ...(verdict.error === undefined ? {} : { error: verdict.error }),
      ...(verdict.status === "failed" && written ? { at: written } : {}),
      ...(item === undefined ? {} : { item }),
      ...(delegate ? { delegate } : {}),
      ...(task.role ? { role: task.role } : {}),
      ...flags(run),
      ...outcomeFlags(verdict, task, run),
      durationMs: Date.now() - started,
      check: context.check,
    });
  try {
    if (!(await conditionsHold(state, task, context, where))) {
      const skipped = skippedVerdict("when: condition was false");
      finish(state, task, skipped);
      report(skipped);
      return { status: "skipped", result: skipped.result };
    }
    const target = await delegateTarget(state, task, context, where, run);
    if (target !== state) delegate = target.host.name;
    const verdict = task.loop
      ? await runLoop({ state, target, task, context, where, options, play, run }, report)
      : await runAttempts(state, target, task, context, where, options, play);
    finish(state, task, verdict);
    report(verdict);
    return outcome(verdict, task);
  } catch (error) {
    const verdict = errorVerdict(error, task, where);
    if (verdict.status === "unreachable") state.status = "unreachable";
    finish(state, task, verdict);
    report(verdict);
    return outcome(verdict, task);
  }
}

function flags(run: TaskRun) {
  return { ...(run.handler ? { handler: true } : {}), ...(run.runOnce ? { runOnce: true } : {}) };
}

function outcomeFlags(verdict: Verdict, task: CompiledTask, run: TaskRun) {
  if (verdict.status !== "failed") return {};
  if (task.task.options.ignoreErrors) return { ignored: true };
  return run.rescuable ? { rescued: true } : {};
}

function outcome(verdict: Verdict, task: CompiledTask): TaskOutcome {
  return {
    status: verdict.status,
    result: verdict.result,
    ...(verdict.error === undefined ? {} : { error: verdict.error }),
    ...(verdict.status === "failed" && task.task.options.ignoreErrors ? { ignored: true } : {}),
  };
}

/** The context predicates see; `facts` gathers on first read (see {@link withFacts}). */
export function taskContext(
  state: HostState,
  task: CompiledTask,
  options: RunOptions,
  failure: Failure,
): TaskContext {
  return {
    host: state.host.name,
    vars: task.vars,
    registered: state.registered,
    check: task.task.options.checkMode ?? options.check,
    failure,
    get facts() {
      return factsView(state);
    },
    result: (of) => state.results.get(of) as never,
  };
}

async function conditionsHold(
  state: HostState,
  task: CompiledTask,
  context: TaskContext,
  where: Where,
): Promise<boolean> {
  const own = task.task.options.when;
  for (const condition of own ? [...task.conditions, own] : task.conditions) {
    if (!(await withFacts(state, where, () => condition(context)))) return false;
  }
  return true;
}

async function delegateTarget(
  state: HostState,
  task: CompiledTask,
  context: TaskContext,
  where: Where,
  run: TaskRun,
): Promise<HostState> {
  const to = task.task.options.delegateTo;
  if (to === undefined || task.loop) return state;
  return delegateOf(state, state, to, context, where, run);
}

// An item's delegateTo only differs from the loop's when the item sets its own.
async function delegateOf(
  state: HostState,
  target: HostState,
  to: string | ((ctx: TaskContext) => string),
  context: TaskContext,
  where: Where,
  run: TaskRun,
): Promise<HostState> {
  const name = typeof to === "function" ? await withFacts(state, where, () => to(context)) : to;
  if (name === target.host.name) return target;
  if (name === state.host.name) return state;
  if (!run.delegate)
    throw taskError("DELEGATE_UNAVAILABLE", "delegateTo is not available here", where);
  try {
    return await run.delegate(name, where);
  } catch (error) {
    // The delegate's failure is this task's: the host the task is for is still reachable.
    if (!(error instanceof OmensError) || error.family !== "connection") throw error;
    throw taskError(
      "DELEGATE_UNREACHABLE",
      `cannot reach ${name}, which this task delegates to: ${error.message}`,
      where,
      error,
    );
  }
}

/** Runs a loop's items one after another; every item runs even when an earlier one fails. */
async function runLoop(
  scope: LoopScope,
  report: (verdict: Verdict, item?: string) => void,
): Promise<Verdict> {
  const { state, task, context, where, options } = scope;
  const loop = task.loop as NonNullable<CompiledTask["loop"]>;
  const items = loop.fixed ?? (await dynamicItems(state, loop, context, where));
  const results: TaskResult[] = [];
  for (const item of items) {
    if (options.signal?.aborted) break;
    const verdict = await runItem(scope, item);
    report(verdict, item.label);
    if (verdict.status === "changed") item.task.notify.forEach((id) => state.notified.add(id));
    results.push({ ...verdict.result, item: item.item, label: item.label });
  }
  return loopVerdict(results, items.length);
}

async function dynamicItems(
  state: HostState,
  loop: NonNullable<CompiledTask["loop"]>,
  context: TaskContext,
  where: Where,
): Promise<CompiledItem[]> {
  const source = loop.spec.items as (ctx: TaskContext) => readonly unknown[];
  const items = await withFacts(state, where, () => source(context));
  if (!Array.isArray(items))
    throw taskError(
      "LOOP_ITEMS",
      `loop: the items function returned ${typeof items}, not an array`,
      where,
    );
  return items.map((item, index) => loop.compile(item, index));
}

interface LoopScope {
  state: HostState;
  target: HostState;
  task: CompiledTask;
  context: TaskContext;
  where: Where;
  options: RunOptions;
  play: string;
  run: TaskRun;
}

async function runItem(scope: LoopScope, item: CompiledItem): Promise<Verdict> {
  const { state, target, task: loopTask, context: loopContext, options, play, run } = scope;
  const where: Where = { ...item.task.task.where, host: state.host.name, task: loopTask.name };
  // A fresh context: spreading the loop's would read (and so gather) its facts.
  const context = taskContext(state, item.task, options, loopContext.failure);
  try {
    const when = item.task.task.options.when;
    if (when && !(await withFacts(state, where, () => when(context))))
      return skippedVerdict("when: condition was false");
    const to = item.task.task.options.delegateTo;
    const itemTarget =
      to === undefined ? target : await delegateOf(state, target, to, context, where, run);
    return await runAttempts(
      state,
      itemTarget,
      item.task,
      context,
      where,
      options,
      play,
      item.label,
    );
  } catch (error) {
    return errorVerdict(error, item.task, where);
  }
}

function loopVerdict(results: TaskResult[], count: number): Verdict {
  const failed = results.filter((r) => r.failed).length;
  const changed = results.filter((r) => r.changed).length;
  const skipped = results.length > 0 && results.every((r) => r.skipped);
  const status: TaskStatus =
    failed > 0 ? "failed" : skipped ? "skipped" : changed > 0 ? "changed" : "ok";
  const reason =
    failed > 0
      ? `${failed} of ${count} items failed`
      : count === 0
        ? "no items"
        : `${count} items: ${changed} changed`;
  const result: TaskResult = {
    changed: changed > 0,
    failed: failed > 0,
    skipped,
    reason,
    results,
  };
  return { status, result, reason, ...(failed > 0 ? { error: reason } : {}) };
}

/** Runs a task's attempts; a probe then reports its health (see {@link reportHealth}). */
async function runAttempts(
  state: HostState,
  target: HostState,
  task: CompiledTask,
  context: TaskContext,
  where: Where,
  options: RunOptions,
  play: string,
  item?: string,
): Promise<Verdict> {
  const started = Date.now();
  const verdict = await attemptUntilDone(state, target, task, context, where, options, play, item);
  if (task.module.name === "probe") reportHealth(state, task, verdict, play, options, started);
  return verdict;
}

/**
 * A probe's health event. An unreachable host reports its probes after the batch (see
 * unreachableProbes), so only a finished verdict is reported here.
 */
function reportHealth(
  state: HostState,
  task: CompiledTask,
  verdict: Verdict,
  play: string,
  options: RunOptions,
  started: number,
) {
  if (verdict.status === "skipped" || verdict.status === "unreachable") return;
  const args = (task.args ?? task.task.args) as { component?: unknown; check?: unknown };
  const healthy = verdict.status === "ok";
  const detail =
    task.task.options.noLog === true
      ? HIDDEN
      : typeof verdict.result.detail === "string"
        ? verdict.result.detail
        : capDetail(verdict.error ?? verdict.reason);
  options.sink({
    kind: "health",
    host: state.host.name,
    component: String(args.component),
    check: String(args.check),
    healthy,
    detail,
    play,
    task: task.name,
    durationMs: Date.now() - started,
  });
}

/**
 * Plans and applies a task, again after a failed attempt or an unmet `until`, up to `retries`
 * more times with `delay` seconds between. Connection failures are not retried.
 */
async function attemptUntilDone(
  state: HostState,
  target: HostState,
  task: CompiledTask,
  context: TaskContext,
  where: Where,
  options: RunOptions,
  play: string,
  item?: string,
): Promise<Verdict> {
  const { until, retries: asked, delay } = task.task.options;
  const retries = asked ?? (until ? 3 : 0);
  const delayMs = Math.max(0, (delay ?? 5) * 1000);
  for (let attempt = 1; ; attempt += 1) {
    const verdict = await attemptOnce(state, target, task, context, where, options);
    const done =
      verdict.status === "skipped" ||
      verdict.status === "unreachable" ||
      (until
        ? await withFacts(state, where, () => until(verdict.result, context))
        : verdict.status !== "failed");
    if (retries > 0) verdict.result.attempts = attempt;
    if (done) return verdict;
    if (attempt > retries || options.signal?.aborted)
      return retries > 0 ? exhausted(verdict, attempt, until !== undefined) : verdict;
    options.sink({
      kind: "task-retry",
      play,
      task: task.name,
      host: state.host.name,
      ...(item === undefined ? {} : { item }),
      attempt,
      of: retries + 1,
      reason: verdict.status === "failed" ? (verdict.error ?? verdict.reason) : "until: not yet",
      delayMs,
    });
    await sleep(delayMs, undefined, options.signal ? { signal: options.signal } : {}).catch(
      () => undefined,
    );
  }
}

function exhausted(verdict: Verdict, attempts: number, hasUntil: boolean): Verdict {
  if (verdict.status === "failed") {
    const error = `${verdict.error ?? verdict.reason}\n  (gave up after ${attempts} attempts)`;
    return { ...verdict, error };
  }
  const reason = `until: the condition did not hold after ${attempts} attempts (last: ${verdict.reason})`;
  const result = { ...verdict.result, failed: true, reason };
  return hasUntil ? { status: "failed", result, reason, error: reason } : verdict;
}

async function attemptOnce(
  state: HostState,
  target: HostState,
  task: CompiledTask,
  context: TaskContext,
  where: Where,
  options: RunOptions,
): Promise<Verdict> {
  try {
    const applied = await withFacts(state, where, () =>
      planAndApply(state, target, task, context, where, options),
    );
    return await judge(state, task, applied, context, where);
  } catch (error) {
    const verdict = errorVerdict(error, task, where);
    if (verdict.status === "unreachable" && target !== state)
      return { ...verdict, status: "failed", reason: `delegate ${target.host.name} unreachable` };
    if (verdict.status === "unreachable") throw error;
    return verdict;
  }
}

/** The task's arguments for this host: deferred values computed now, then validated. */
function taskArgs(task: CompiledTask, context: TaskContext, where: Where): unknown {
  if (task.deferred !== true) return task.args;
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

interface Applied {
  plan: Plan;
  result: TaskResult;
  status: Plan["status"];
  reason: string;
}

async function planAndApply(
  state: HostState,
  target: HostState,
  task: CompiledTask,
  context: TaskContext,
  where: Where,
  options: RunOptions,
): Promise<Applied> {
  const connection = target.connection;
  if (!connection)
    throw new OmensError("no connection for a running task", { code: "BUG", family: "bug", where });
  const become = task.become;
  const planContext: PlanContext = {
    host: context.host,
    vars: task.vars,
    registered: state.registered,
    check: context.check,
    diff: options.diff,
    where,
    task: task.name,
    baseDir: task.baseDir,
    taskContext: context,
  };
  const reader = new HostReader(connection, where, become);
  const args = taskArgs(task, context, where);
  const facts = await task.module.facts(args, reader, planContext);
  const plan = task.module.plan(args, facts, planContext);
  const runs = plan.status === "changed" && (!context.check || plan.readOnly === true);
  let status = plan.status;
  let reason = plan.reason;
  if (context.check && !runs) {
    const stale = reader.paths.find((p) => dependsOnSimulated(p, target.simulated));
    if (stale && plan.status === "failed") {
      status = "skipped";
      reason = `check mode: ${stale} would be changed by an earlier task, so this task cannot be planned yet (${plan.reason})`;
    }
    plan.ops.forEach((op) => "path" in op && target.simulated.add(op.path));
  }
  let extra: Record<string, unknown> = plan.result ?? {};
  if (runs) {
    const output = await apply(connection, plan, task, where, options, state.host.name);
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

function apply(
  connection: Connection,
  plan: Plan,
  task: CompiledTask,
  where: Where,
  options: RunOptions,
  host: string,
) {
  const noLog = task.task.options.noLog === true;
  return applyOps(connection, plan.ops, where, task.become, {
    command: (text) =>
      options.verbosity >= 1 &&
      options.sink({ kind: "command", host, task: task.name, command: noLog ? HIDDEN : text }),
    output: (rc, stdout, stderr) =>
      options.verbosity >= 3 &&
      !noLog &&
      options.sink({ kind: "command-output", host, rc, stdout, stderr }),
  });
}

/** Applies changedWhen/failedWhen and masks what a noLog task must not show. */
async function judge(
  state: HostState,
  task: CompiledTask,
  applied: Applied,
  context: TaskContext,
  where: Where,
): Promise<Verdict> {
  const { result } = applied;
  const options = task.task.options;
  const judged =
    applied.status !== "skipped" &&
    !(context.check && result.rc === undefined && options.changedWhen);
  const { changedWhen, failedWhen } = options;
  if (judged && changedWhen)
    result.changed = await withFacts(state, where, () => changedWhen(result, context));
  const failedByModule = result.failed;
  if (judged && failedWhen)
    result.failed = await withFacts(state, where, () => failedWhen(result, context));
  // A failure failedWhen accepts is shown as accepted, so an ok line does not read as an error.
  const said =
    failedByModule && !result.failed ? `accepted by failedWhen: ${applied.reason}` : applied.reason;
  const status: TaskStatus = result.failed
    ? "failed"
    : result.skipped
      ? "skipped"
      : result.changed
        ? "changed"
        : "ok";
  const noLog = options.noLog === true;
  const diff =
    applied.plan.diff && maskDiff(applied.plan.diff, noLog, carriesSecret(task.task.args));
  const reason = noLog
    ? status === "failed"
      ? "task failed; details hidden (noLog)"
      : (said.split("\n")[0] ?? "")
    : said;
  if (status === "failed")
    return {
      status,
      result,
      reason: "task failed",
      error: noLog ? maskSecrets(reason) : reason,
      ...(diff ? { diff } : {}),
    };
  return { status, result, reason, ...(diff && status === "changed" ? { diff } : {}) };
}

function errorVerdict(error: unknown, task: CompiledTask, where: Where): Verdict {
  const err =
    error instanceof OmensError
      ? error.at(where)
      : toOmensError(error, { code: "TASK_CRASHED", family: "task", where });
  const status = err.family === "connection" ? "unreachable" : "failed";
  const message = task.task.options.noLog
    ? maskSecrets(`${err.code}: ${err.message.split("\n")[0]}`)
    : describeError(err);
  const reason = status === "unreachable" ? "host became unreachable" : "task failed";
  const result = { changed: false, failed: true, skipped: false, reason: message };
  return { status, result, reason, error: message };
}

function skippedVerdict(reason: string): Verdict {
  const result = { changed: false, failed: false, skipped: true, reason: "condition was false" };
  return { status: "skipped", result, reason };
}

/** Registers the result (by name and for `ctx.result`) and queues handlers on a change. */
function finish(state: HostState, task: CompiledTask, verdict: Verdict) {
  registerResult(state, task, verdict.result);
  if (verdict.status === "changed") task.notify.forEach((id) => state.notified.add(id));
}

/** Stores a task's result on a host, under its `register` name and for `ctx.result(task)`. */
export function registerResult(state: HostState, task: CompiledTask, result: TaskResult) {
  state.results.set(task.task, result);
  const name = task.task.options.register;
  if (name) state.registered[name] = result;
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

/** True when a path, or a folder above it, is one an earlier check-mode task would change. */
function dependsOnSimulated(path: string, simulated: Set<string>): boolean {
  for (let p = path; p.length > 1; p = p.slice(0, Math.max(1, p.lastIndexOf("/")))) {
    if (simulated.has(p)) return true;
  }
  return false;
}
