import picomatch from "picomatch";
import {
  emptyCounts,
  type ChangeRow,
  type EventSink,
  type HealthRow,
  type HostCounts,
} from "../events.js";
import {
  bug,
  describeError,
  inputError,
  taskError,
  toOmensError,
  type OmensError,
  type Where,
} from "../errors.js";
import type { FactParts, Gathered, HostFacts } from "../facts/gathered.js";
import type { Inventory, InventoryHost } from "../inventory/load.js";
import { matchHosts } from "../inventory/patterns.js";
import type { Connection } from "../connection/types.js";
import type { Play, Playbook } from "../dsl/playbook.js";
import type { Failure, Task, TaskResult } from "../dsl/task.js";
import { checkRollout, serialBatches } from "./batches.js";
import {
  compileHost,
  compiledTasks,
  delegateSources,
  type BlockLayout,
  type CompiledHandler,
  type CompiledHost,
  type CompiledTask,
  type Entry,
  type Frame,
  type TagSelector,
} from "./compile.js";
import { openConnection } from "./connect.js";
import { clearOwed, readOwed, recordOwed } from "./owed.js";
import { announceFactReads } from "../facts/prefetch.js";
import { ensureFacts } from "./facts.js";
import { RunReport, unreachableProbes } from "./report.js";
import { registerResult, runTask, type TaskOutcome, type TaskRun } from "./task.js";

/** How a run behaves; the CLI fills it from flags. */
export interface RunOptions {
  check: boolean;
  diff: boolean;
  limit?: string;
  forks: number;
  forceHandlers: boolean;
  /** 0 quiet, 1 commands, 3 command output. */
  verbosity: number;
  sink: EventSink;
  /** Aborting stops new tasks from starting; running ones finish. */
  signal?: AbortSignal;
  /** How to reach a host; tests and benchmarks may swap it. */
  connect?: (host: InventoryHost) => Connection;
  /** `--step`: asked before each task; "no" skips it, "continue" stops asking. */
  confirm?: (task: string) => Promise<StepAnswer>;
}

/** An answer to `--step`'s question. */
export type StepAnswer = "yes" | "no" | "continue";

/** Per-host state across the plays of one run. */
export interface HostState {
  host: InventoryHost;
  connection?: Connection;
  /** The connection being opened, so a host delegated to by many opens it once. */
  connecting?: Promise<Connection>;
  status: "active" | "failed" | "unreachable";
  counts: HostCounts;
  registered: Record<string, TaskResult>;
  /** Results by task, for `ctx.result(task)`. */
  results: WeakMap<Task, TaskResult>;
  notified: Set<string>;
  /** Handlers of the current play recorded on the host as owed (see owed.ts). */
  recorded: Set<string>;
  /** Check mode: paths an earlier task would have changed, so later facts about them are stale. */
  simulated: Set<string>;
  /** The host has been part of a batch (hosts only delegated to are not). */
  started?: boolean;
  /** Told before facts are gathered (for `-v`). */
  onGather?: (parts: FactParts) => void;
  /** Facts gathered this run (once per host). */
  gathered?: Gathered;
  facts?: HostFacts;
}

export interface RunResult {
  hosts: Record<string, HostCounts>;
  failed: string[];
  unreachable: string[];
  /** Hosts a stopped rollout never started on. */
  untouched: string[];
  /** Every probe's outcome (unreachable hosts' probes are unhealthy). */
  health: HealthRow[];
  /** Per host and role, the tasks that changed (in check mode: would change). */
  changes: ChangeRow[];
  interrupted: boolean;
  /** Remote commands run, summed over hosts. */
  commands: number;
  /** SSH channels opened and bytes sent (commands and their input), summed over hosts. */
  channels: number;
  bytesSent: number;
}

/** Exit codes, as documented in the README. */
export const EXIT = {
  ok: 0,
  bug: 1,
  failed: 2,
  unhealthy: 3,
  unreachable: 4,
  input: 5,
  changed: 6,
  interrupted: 130,
} as const;

/** What the exit code looks at besides the run itself. */
export interface ExitPolicy {
  /** `--fail-on-change`: a change (with --check: drift) is exit code 6. */
  failOnChange?: boolean;
}

/**
 * The exit code for a finished run, the worst outcome first: an interrupt, task failures,
 * unreachable hosts, unhealthy probes, then (with `--fail-on-change`) changes.
 */
export function exitCodeFor(
  result: Pick<RunResult, "interrupted" | "failed" | "unreachable" | "health" | "changes">,
  policy: ExitPolicy = {},
): number {
  if (result.interrupted) return EXIT.interrupted;
  if (result.failed.length > 0) return EXIT.failed;
  if (result.unreachable.length > 0) return EXIT.unreachable;
  if (result.health.some((row) => !row.healthy)) return EXIT.unhealthy;
  if (policy.failOnChange && result.changes.length > 0) return EXIT.changed;
  return EXIT.ok;
}

/** A playbook with its per-host tasks already built and checked (no host contacted yet). */
export interface PreparedPlay {
  play: Play;
  hosts: string[];
  compiled: Map<string, CompiledHost>;
  unmatched: string[];
  /** Where each host starts in its program (`--start-at-task`); 0 when absent. */
  start?: Map<string, number>;
}

/** What selects the tasks of a run besides the hosts. */
export interface Selection {
  limit?: string;
  select?: TagSelector;
}

/** Resolves hosts and builds every task for every host; throws input errors before any SSH. */
export function preparePlaybook(
  playbook: Playbook,
  inventory: Inventory,
  file: string,
  selection: Selection | string = {},
): PreparedPlay[] {
  const { limit, select } = typeof selection === "string" ? { limit: selection } : selection;
  const limited = limit ? new Set(matchHosts(inventory, limit).hosts) : undefined;
  return playbook.plays.map((play) => {
    checkRollout(play);
    const match = matchHosts(inventory, play.hosts);
    const hosts = match.hosts.filter((h) => !limited || limited.has(h));
    const compiled = new Map(
      hosts.map((h) => [
        h,
        compileHost(play, inventory.hosts.get(h) as InventoryHost, file, select, inventory.hosts),
      ]),
    );
    compiled.forEach((c, h) =>
      checkDelegates(play, inventory.hosts.get(h) as InventoryHost, c, inventory, file),
    );
    return { play, hosts, compiled, unmatched: match.unmatched };
  });
}

/**
 * A fixed `delegateTo` must name an inventory host: checked before any host is contacted. A
 * name read from an inventory variable is reported with that variable's line.
 */
function checkDelegates(
  play: Play,
  host: InventoryHost,
  compiled: CompiledHost,
  inventory: Inventory,
  file: string,
) {
  for (const task of compiledTasks(compiled)) {
    const to = task.task.options.delegateTo;
    if (typeof to !== "string" || inventory.hosts.has(to)) continue;
    const from = delegateSources(play, host, file, task.task, inventory.hosts)
      .map((s) => `"${s.name}", set in ${s.label}`)
      .join("; ");
    throw inputError(
      "playbook",
      "DELEGATE_UNKNOWN",
      `task "${task.name}" delegates to "${to}"${from ? ` (read from ${from})` : ""}, which is not an inventory host`,
      { ...task.task.where, host: host.name },
    );
  }
}

/**
 * `--start-at-task`: drops the plays before the first one with a task of that name (or glob)
 * and starts each host of that play at its first such task.
 */
export function startAtTask(plays: PreparedPlay[], name: string): PreparedPlay[] {
  const matches = name.includes("*") ? picomatch(name) : (task: string) => task === name;
  const first = plays.findIndex((p) =>
    [...p.compiled.values()].some((c) => c.tasks.some((t) => matches(t.name))),
  );
  if (first < 0)
    throw inputError("usage", "START_TASK_UNKNOWN", `--start-at-task: no task is named "${name}"`);
  const found = plays[first] as PreparedPlay;
  const start = new Map(
    [...found.compiled].map(([host, c]) => {
      const at = c.program.findIndex((e) => e.kind === "task" && matches(e.task.name));
      return [host, at < 0 ? c.program.length : at];
    }),
  );
  return [{ ...found, start }, ...plays.slice(first + 1)];
}

/** Runs prepared plays in order, host batches in parallel up to `forks`. */
export async function runPlaybook(
  plays: PreparedPlay[],
  inventory: Inventory,
  given: RunOptions,
): Promise<RunResult> {
  const started = Date.now();
  const report = new RunReport();
  const options: RunOptions = {
    ...given,
    sink: (event) => {
      report.observe(event);
      given.sink(event);
    },
  };
  const states = new Map<string, HostState>();
  const stateOf = (name: string) => {
    let state = states.get(name);
    if (!state) {
      state = newHostState(inventory.hosts.get(name) as InventoryHost);
      state.onGather = gatherNotice(name, options);
      states.set(name, state);
    }
    return state;
  };
  const run: PlayRun = { stateOf, states, options, untouched: [], inventory };
  try {
    for (const prepared of plays) {
      const stop = await runPlay(prepared, run);
      if (stop || options.signal?.aborted) break;
    }
  } finally {
    await Promise.all([...states.values()].map((s) => s.connection?.close()));
  }
  const result = summarize(run, report);
  options.sink({
    kind: "recap",
    hosts: result.hosts,
    check: options.check,
    durationMs: Date.now() - started,
    ...(result.untouched.length > 0 ? { untouched: result.untouched } : {}),
    ...(result.interrupted ? { interrupted: true } : {}),
    ...(result.health.length > 0 ? { health: result.health } : {}),
    ...(result.changes.length > 0 ? { changes: result.changes } : {}),
  });
  return result;
}

function gatherNotice(host: string, options: RunOptions) {
  return (parts: FactParts) => {
    if (options.verbosity < 1) return;
    const what = `os, kernel, hostname, init, addresses, tpm${parts.packages ? ", packages" : ""}`;
    options.sink({ kind: "command", host, command: `gather facts (${what})` });
  };
}

function newHostState(host: InventoryHost): HostState {
  return {
    host,
    status: "active",
    counts: emptyCounts(),
    registered: {},
    results: new WeakMap(),
    notified: new Set(),
    recorded: new Set(),
    simulated: new Set(),
  };
}

/** What the plays of one run share. */
interface PlayRun {
  stateOf(name: string): HostState;
  states: Map<string, HostState>;
  options: RunOptions;
  untouched: string[];
  inventory: Inventory;
}

// Hosts only delegated to, or never reached by a stopped rollout, are not in the recap.
function summarize(run: PlayRun, report: RunReport): RunResult {
  const all = [...run.states.values()].filter((s) => s.started);
  const names = all.map((s) => s.host.name);
  return {
    hosts: Object.fromEntries(all.map((s) => [s.host.name, s.counts])),
    health: report.health(names),
    changes: report.changes(names),
    failed: all.filter((s) => s.status === "failed").map((s) => s.host.name),
    unreachable: all.filter((s) => s.status === "unreachable").map((s) => s.host.name),
    untouched: run.untouched.filter((h) => !run.states.get(h)?.started),
    interrupted: run.options.signal?.aborted ?? false,
    commands: [...run.states.values()].reduce((n, s) => n + (s.connection?.commandCount ?? 0), 0),
    channels: [...run.states.values()].reduce((n, s) => n + (s.connection?.channelCount ?? 0), 0),
    bytesSent: [...run.states.values()].reduce((n, s) => n + (s.connection?.bytesSent ?? 0), 0),
  };
}

/** Runs one play; returns true when the whole run must stop (a rollout budget was exceeded). */
async function runPlay(prepared: PreparedPlay, run: PlayRun): Promise<boolean> {
  const { play } = prepared;
  const { options } = run;
  const title = play.name ?? play.hosts;
  for (const term of prepared.unmatched)
    options.sink({ kind: "warning", message: `pattern '${term}' matched no hosts` });
  const hosts = prepared.hosts.filter((h) => (run.states.get(h)?.status ?? "active") === "active");
  for (const host of prepared.hosts.filter((h) => run.states.get(h)?.status === "unreachable"))
    reportUnreachable(prepared.compiled.get(host)?.program ?? [], host, title, options);
  if (hosts.length === 0) {
    const left = prepared.hosts.length > 0;
    options.sink({
      kind: "play-empty",
      play: title,
      pattern: play.hosts,
      warning: left
        ? `every host it matched (${prepared.hosts.join(", ")}) failed, was unreachable or was left out of a stopped rollout earlier; nothing to do`
        : `hosts '${play.hosts}' matched no hosts; nothing to do`,
    });
    return false;
  }
  const batches = serialBatches(hosts, play.serial, play.where);
  for (const [index, batch] of batches.entries()) {
    options.sink({
      kind: "play-start",
      play: title,
      hosts: batch,
      ...(batches.length > 1 ? { batch: { index: index + 1, of: batches.length } } : {}),
    });
    const states = batch.map(run.stateOf);
    states.forEach((s) => (s.started = true));
    const stopped = await runBatch(prepared, states, title, run);
    await runHandlers(prepared, states, title, options, delegation(run));
    const later = batches.slice(index + 1).flat();
    // A failed last batch has no later batches to stop: nothing to report.
    if (stopped && (later.length > 0 || stopped.scope === "run")) {
      run.untouched.push(...later);
      const message =
        later.length > 0 ? `${stopped.message} (${later.join(", ")})` : stopped.message;
      options.sink({ kind: "play-stopped", play: title, message });
      return stopped.scope === "run";
    }
    if (options.signal?.aborted) return true;
  }
  return false;
}

/** Why a rollout stops: the whole run (a failure budget) or only this play's later batches. */
interface Stop {
  message: string;
  scope: "run" | "play";
}

/** Where one host is in its program during a batch. */
interface Cursor {
  state: HostState;
  compiled: CompiledHost;
  pc: number;
  /** `--start-at-task`: the position of the task to start at; only guards run before it. */
  startAt: number;
  /** Failures waiting for a block's `always` to finish before they go on outwards. */
  pending: Map<number, Failure>;
  /** Failures a block's `rescue` is handling. */
  rescuing: Map<number, Failure>;
  /** Whether the fact reads of its tasks were announced to its connection. */
  announced?: boolean;
}

/**
 * Runs a batch in lockstep: each round runs the lowest program position any host is at, on
 * every host that is there. Jumps (into `rescue`, to `always`) only go forward, so hosts
 * that skipped a section wait for the others and every task still runs once for all the
 * hosts that reach it. Returns why the rollout stops, if it must.
 */
async function runBatch(
  prepared: PreparedPlay,
  batch: HostState[],
  title: string,
  run: PlayRun,
): Promise<Stop | undefined> {
  const cursors = batch.map((state): Cursor => {
    const compiled = prepared.compiled.get(state.host.name) as CompiledHost;
    const startAt = prepared.start?.get(state.host.name) ?? 0;
    return { state, compiled, pc: 0, startAt, pending: new Map(), rescuing: new Map() };
  });
  const stop = await stepBatch(prepared, batch, cursors, title, run);
  for (const cursor of cursors.filter((c) => c.state.status === "unreachable"))
    reportUnreachable(
      cursor.compiled.program.slice(cursor.pc),
      cursor.state.host.name,
      title,
      run.options,
    );
  return stop;
}

/** The probes a host did not get to because it became unreachable are unhealthy rows. */
function reportUnreachable(
  entries: readonly Entry[],
  host: string,
  play: string,
  options: RunOptions,
) {
  for (const event of unreachableProbes(entries, host, play)) options.sink(event);
}

async function stepBatch(
  prepared: PreparedPlay,
  batch: HostState[],
  cursors: Cursor[],
  title: string,
  run: PlayRun,
): Promise<Stop | undefined> {
  if (prepared.play.gatherFacts) await gatherAll(cursors, prepared, title, run);
  let asking = run.options.confirm !== undefined;
  for (;;) {
    if (run.options.signal?.aborted) return undefined;
    const ready = cursors.filter((c) => advance(c));
    if (ready.length === 0) return undefined;
    const pc = Math.min(...ready.map((c) => c.pc));
    const group = ready.filter((c) => c.pc === pc);
    // Known limit: --step asks about tasks only; handlers run without a question.
    if (asking && !isGuard(taskAt(group[0] as Cursor))) {
      const answer = await (run.options.confirm as NonNullable<RunOptions["confirm"]>)(
        taskAt(group[0] as Cursor).name,
      );
      if (answer === "no") {
        group.forEach((c) => (c.pc += 1));
        continue;
      }
      asking = answer !== "continue";
    }
    await runStep(group, title, run);
    await recordNotified(group, run.options);
    const verdict = rolloutVerdict(prepared.play, batch, prepared);
    if (verdict) return verdict;
  }
}

/**
 * Records on each host the handlers its tasks have just notified, before anything else runs:
 * if the run stops before the handlers do, the next run still owes them. Check mode records
 * nothing.
 */
async function recordNotified(group: Cursor[], options: RunOptions) {
  if (options.check) return;
  await inPool(group, options.forks, async ({ state, compiled }) => {
    const fresh = compiled.handlers.filter(
      (h) => state.notified.has(h.id) && !state.recorded.has(h.id),
    );
    if (fresh.length === 0 || !state.connection) return;
    fresh.forEach((h) => state.recorded.add(h.id));
    try {
      await recordOwed(
        state.connection,
        fresh.map((h) => h.name),
      );
    } catch (error) {
      options.sink({ kind: "warning", message: `${state.host.name}: ${(error as Error).message}` });
    }
  });
}

/** Moves a host over control entries; true when it is at a task it must run. */
function advance(cursor: Cursor): boolean {
  const { program, blocks } = cursor.compiled;
  while (cursor.state.status === "active" && cursor.pc < program.length) {
    const entry = program[cursor.pc] as Entry;
    // Before `--start-at-task`'s task only guards run.
    if (cursor.pc < cursor.startAt && !(entry.kind === "task" && isGuard(entry.task))) {
      cursor.pc += 1;
      continue;
    }
    if (entry.kind === "task") return true;
    if (entry.kind === "skip-rescue") {
      cursor.pc = (blocks[entry.block] as BlockLayout).alwaysAt;
      continue;
    }
    const failure = cursor.pending.get(entry.block);
    cursor.pending.delete(entry.block);
    cursor.rescuing.delete(entry.block);
    if (failure) fail(cursor, failure, entry.scope);
    else cursor.pc += 1;
  }
  return false;
}

function isGuard(task: CompiledTask): boolean {
  return task.task.options.guard === true;
}

function taskAt(cursor: Cursor): CompiledTask {
  const entry = cursor.compiled.program[cursor.pc];
  if (entry?.kind !== "task") throw bug(`no task at position ${cursor.pc}`);
  return entry.task;
}

function scopeAt(cursor: Cursor): readonly Frame[] {
  const entry = cursor.compiled.program[cursor.pc];
  return entry?.kind === "task" ? entry.scope : [];
}

/**
 * A task failed inside `scope`: the innermost block whose `tasks` it is in and that has a
 * `rescue` takes the host there; blocks without one run their `always` first and pass the
 * failure on. A failure nobody rescues fails the host.
 */
function fail(cursor: Cursor, failure: Failure, scope: readonly Frame[]) {
  const { blocks } = cursor.compiled;
  for (let i = scope.length - 1; i >= 0; i -= 1) {
    const frame = scope[i] as Frame;
    const layout = blocks[frame.block] as BlockLayout;
    if (frame.section === "tasks" && layout.rescueAt !== undefined) {
      cursor.rescuing.set(frame.block, failure);
      cursor.pc = layout.rescueAt;
      return;
    }
    if (frame.section !== "always") {
      cursor.pending.set(frame.block, failure);
      cursor.pc = layout.alwaysAt;
      return;
    }
    // A failure inside `always` replaces the block's own and goes on outwards.
    cursor.pending.delete(frame.block);
  }
  cursor.state.status = "failed";
}

/** Whether a failure at this scope ends in some block's `rescue` (what the recap counts). */
function isRescued(scope: readonly Frame[], blocks: BlockLayout[]): boolean {
  return scope.some((f) => f.section === "tasks" && blocks[f.block]?.rescueAt !== undefined);
}

/** What `ctx.failure` shows: the failure the innermost rescue or always section is about. */
function failureFor(cursor: Cursor, scope: readonly Frame[]): Failure {
  for (let i = scope.length - 1; i >= 0; i -= 1) {
    const frame = scope[i] as Frame;
    if (frame.section === "tasks") continue;
    const failure =
      cursor.rescuing.get(frame.block) ??
      (frame.section === "always" ? cursor.pending.get(frame.block) : undefined);
    if (failure) return failure;
  }
  return { kind: "none" };
}

async function runStep(group: Cursor[], title: string, run: PlayRun) {
  const { options } = run;
  const first = group[0] as Cursor;
  if (taskAt(first).task.options.runOnce) return runOnce(group, title, run);
  await inPool(group, options.forks, async (cursor) => {
    const task = taskAt(cursor);
    if (!(await ensureConnected(cursor.state, title, task.name, options))) return;
    announceOnce(cursor);
    settle(cursor, await runTask(cursor.state, task, title, options, taskRun(cursor, run)));
  });
}

/** The paths this host's remaining tasks will read, announced once per batch (see FactCache). */
function announceOnce(cursor: Cursor) {
  if (cursor.announced || !cursor.state.connection) return;
  cursor.announced = true;
  announceFactReads(cursor.state.connection, cursor.compiled.tasks);
}

function taskRun(cursor: Cursor, run: PlayRun) {
  const scope = scopeAt(cursor);
  return {
    failure: failureFor(cursor, scope),
    rescuable: isRescued(scope, cursor.compiled.blocks),
    delegate: delegation(run),
  };
}

/**
 * `runOnce`: the first host of the batch runs the task; every host at this step registers its
 * result (each host's own copy of the task), and a failure is a failure on each of them.
 */
// Known limit: handlers the task notifies are queued on the host that ran it only.
async function runOnce(group: Cursor[], title: string, run: PlayRun) {
  const first = group[0] as Cursor;
  const task = taskAt(first);
  if (!(await ensureConnected(first.state, title, task.name, run.options))) return;
  const outcome = await runTask(first.state, task, title, run.options, {
    ...taskRun(first, run),
    runOnce: true,
  });
  settle(first, outcome);
  for (const cursor of group.slice(1)) {
    registerResult(cursor.state, taskAt(cursor), outcome.result);
    if (outcome.status === "failed" && !outcome.ignored) {
      cursor.state.counts[
        isRescued(scopeAt(cursor), cursor.compiled.blocks) ? "rescued" : "failed"
      ] += 1;
      fail(cursor, failureOf(taskAt(cursor), outcome), scopeAt(cursor));
    } else cursor.pc += 1;
  }
}

/** Counts a task's outcome and moves the host on: to the next task, or to its failure handling. */
function settle(cursor: Cursor, outcome: TaskOutcome) {
  const counts = cursor.state.counts;
  const scope = scopeAt(cursor);
  const task = taskAt(cursor);
  if (outcome.status === "unreachable") {
    counts.unreachable += 1;
    cursor.state.status = "unreachable";
    return;
  }
  if (outcome.status !== "failed") {
    counts[outcome.status] += 1;
    cursor.pc += 1;
    return;
  }
  if (outcome.ignored) {
    counts.ignored += 1;
    cursor.pc += 1;
    return;
  }
  counts[isRescued(scope, cursor.compiled.blocks) ? "rescued" : "failed"] += 1;
  fail(cursor, failureOf(task, outcome), scope);
}

function failureOf(task: CompiledTask, outcome: TaskOutcome): Failure {
  return {
    kind: "failed",
    task: task.name,
    error: outcome.error ?? outcome.result.reason,
    result: outcome.result,
  };
}

/** `gatherFacts`: every host of the batch gathers its facts before the first task. */
async function gatherAll(cursors: Cursor[], prepared: PreparedPlay, title: string, run: PlayRun) {
  const setting = prepared.play.gatherFacts;
  const parts = { packages: typeof setting === "object" && setting.packages === true };
  await inPool(cursors, run.options.forks, async (cursor) => {
    const { state } = cursor;
    if (!(await ensureConnected(state, title, "gather facts", run.options))) return;
    const started = Date.now();
    run.options.sink({
      kind: "task-start",
      play: title,
      task: "gather facts",
      host: state.host.name,
    });
    const report = (status: "ok" | "failed", reason: string, error?: string) =>
      run.options.sink({
        kind: "task-result",
        play: title,
        task: "gather facts",
        host: state.host.name,
        status,
        reason,
        ...(error ? { error } : {}),
        durationMs: Date.now() - started,
        check: run.options.check,
      });
    try {
      await ensureFacts(state, parts, { host: state.host.name, task: "gather facts" });
      state.counts.ok += 1;
      report("ok", describeFacts(state.facts as HostFacts));
    } catch (error) {
      const err = toOmensError(error, { code: "FACTS_FAILED", family: "task" });
      state.counts.failed += 1;
      state.status = "failed";
      report("failed", "task failed", describeError(err));
    }
  });
}

function describeFacts(facts: HostFacts): string {
  const init = facts.init.kind === "systemd" ? `systemd ${facts.init.version}` : facts.init.name;
  const tpm = facts.tpm.kind === "present" ? `TPM via ${facts.tpm.tcti}` : `TPM ${facts.tpm.kind}`;
  return `${facts.os.id} ${facts.os.versionId}, ${init}, ${tpm}`;
}

/** Finds (and connects to) the host a task is delegated to. */
function delegation(run: PlayRun) {
  return async (name: string, where: Where): Promise<HostState> => {
    if (!run.inventory.hosts.has(name))
      throw taskError("DELEGATE_UNKNOWN", `delegateTo: "${name}" is not an inventory host`, where);
    const state = run.stateOf(name);
    await connect(state, run.options);
    return state;
  };
}

/**
 * Stops the rollout: `anyErrorsFatal` at the first failure and `maxFailPercentage` against the
 * batch size at its start (unreachable hosts count as failed) stop the run; a batch where
 * every host failed stops the play's later batches.
 */
function rolloutVerdict(play: Play, batch: HostState[], prepared: PreparedPlay): Stop | undefined {
  const failed = batch.filter((s) => s.status !== "active").length;
  if (failed === 0) return undefined;
  const budget = (message: string): Stop => ({ message, scope: "run" });
  if (play.anyErrorsFatal)
    return budget(`${failed} of ${batch.length} hosts failed and anyErrorsFatal is set`);
  if (play.maxFailPercentage !== undefined) {
    const percent = (failed / batch.length) * 100;
    if (percent > play.maxFailPercentage)
      return budget(
        `${failed} of ${batch.length} hosts failed (${Math.round(percent)}%) > ${play.maxFailPercentage}%: stopping the rollout; later batches are untouched`,
      );
  }
  const serial = play.serial !== undefined && prepared.hosts.length > batch.length;
  if (serial && failed === batch.length)
    return {
      message: `all ${batch.length} hosts of the batch failed: stopping the rollout; later batches are untouched`,
      scope: "play",
    };
  return undefined;
}

async function runHandlers(
  prepared: PreparedPlay,
  batch: HostState[],
  title: string,
  options: RunOptions,
  delegate: TaskRun["delegate"],
) {
  const force = options.forceHandlers || prepared.play.forceHandlers === true;
  await inPool(batch, options.forks, async (state) => {
    const handlers = prepared.compiled.get(state.host.name)?.handlers ?? [];
    await replayOwed(state, handlers, options);
    const owed = handlers.filter((h) => state.notified.has(h.id));
    const mayRun = state.status === "active" || (state.status === "failed" && force);
    if (owed.length > 0 && (!mayRun || options.signal?.aborted)) {
      const reason =
        state.status === "unreachable"
          ? "host unreachable"
          : options.signal?.aborted
            ? "run interrupted"
            : "a later task failed on this host (use --force-handlers to run them anyway)";
      options.sink({
        kind: "handlers-pending",
        host: state.host.name,
        handlers: owed.map((h) => h.name),
        reason,
      });
      state.notified.clear();
      return;
    }
    const done: string[] = [];
    for (const [index, handler] of owed.entries()) {
      if (state.status === "unreachable") break;
      // A stop signal lets the running handler finish; the ones after it stay owed.
      if (options.signal?.aborted) {
        options.sink({
          kind: "handlers-pending",
          host: state.host.name,
          handlers: owed.slice(index).map((h) => h.name),
          reason: "run interrupted",
        });
        break;
      }
      // A failed handler fails the host: the ones after it wait, owed, as after a failed task.
      if (state.status === "failed" && !force) {
        options.sink({
          kind: "handlers-pending",
          host: state.host.name,
          handlers: owed.slice(index).map((h) => h.name),
          reason:
            "an earlier handler failed on this host (use --force-handlers to run them anyway)",
        });
        break;
      }
      state.notified.delete(handler.id);
      const outcome = await runTask(state, handler, title, options, { handler: true, delegate });
      recordHandler(state, outcome);
      if (outcome.status !== "failed" && outcome.status !== "unreachable") done.push(handler.id);
    }
    state.notified.clear();
    const cleared = handlers.filter((h) => done.includes(h.id) && state.recorded.has(h.id));
    state.recorded.clear();
    if (options.check || cleared.length === 0 || !state.connection) return;
    try {
      await clearOwed(
        state.connection,
        cleared.map((h) => h.name),
      );
    } catch (error) {
      options.sink({ kind: "warning", message: `${state.host.name}: ${(error as Error).message}` });
    }
  });
}

/**
 * Queues the handlers of this play that an earlier run notified but did not get to run on the
 * host. Only hosts this play has contacted are asked: one more command each.
 */
async function replayOwed(state: HostState, handlers: CompiledHandler[], options: RunOptions) {
  if (handlers.length === 0 || !state.connection || state.status === "unreachable") return;
  let names: string[];
  try {
    names = await readOwed(state.connection);
  } catch {
    return;
  }
  // A record this run wrote itself (its tasks notified the handler) is not an earlier run's.
  const owed = handlers.filter((h) => names.includes(h.name) && !state.recorded.has(h.id));
  owed.forEach((h) => {
    state.recorded.add(h.id);
    state.notified.add(h.id);
  });
  if (owed.length > 0)
    options.sink({
      kind: "warning",
      message: `${state.host.name}: an earlier run notified ${owed.map((h) => h.name).join(", ")} and stopped before running it; it runs now`,
    });
}

function recordHandler(state: HostState, outcome: TaskOutcome) {
  if (outcome.status === "failed" && outcome.ignored) state.counts.ignored += 1;
  else state.counts[outcome.status] += 1;
  if (outcome.status === "unreachable") state.status = "unreachable";
  else if (outcome.status === "failed" && !outcome.ignored) state.status = "failed";
}

async function ensureConnected(
  state: HostState,
  play: string,
  task: string,
  options: RunOptions,
): Promise<boolean> {
  if (state.connection) return true;
  try {
    await connect(state, options);
    return true;
  } catch (error) {
    const err = error as OmensError;
    state.status = "unreachable";
    state.counts.unreachable += 1;
    options.sink({
      kind: "task-result",
      play,
      task,
      host: state.host.name,
      status: "unreachable",
      error: describeUnreachable(state.host.name, err),
      durationMs: 0,
      check: options.check,
    });
    return false;
  }
}

/** Opens a host's one connection; callers at the same time share the attempt. */
async function connect(state: HostState, options: RunOptions): Promise<Connection> {
  if (state.connection) return state.connection;
  state.connecting ??= openConnection(state.host, options.connect);
  try {
    state.connection = await state.connecting;
    return state.connection;
  } finally {
    delete state.connecting;
  }
}

function describeUnreachable(host: string, error: OmensError): string {
  const message = `host ${host}: ${error.message}`;
  return error.hint ? `${message}\n  hint: ${error.hint}` : message;
}

/** Runs work over items with at most `limit` at a time. */
export async function inPool<T>(
  items: T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  const workers = Array.from({ length: Math.min(Math.max(1, limit), queue.length) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  });
  await Promise.all(workers);
}
