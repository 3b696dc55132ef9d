import { emptyCounts, type EventSink, type HostCounts } from "../events.js";
import { type OmensError } from "../errors.js";
import type { Inventory, InventoryHost } from "../inventory/load.js";
import { matchHosts } from "../inventory/patterns.js";
import type { Connection } from "../connection/types.js";
import type { Play, Playbook } from "../dsl/playbook.js";
import type { TaskResult } from "../dsl/task.js";
import { serialBatches } from "./batches.js";
import { compileHost, type CompiledHost } from "./compile.js";
import { openConnection } from "./connect.js";
import { announceFactReads } from "../facts/prefetch.js";
import { runTask, type TaskOutcome } from "./task.js";

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
}

/** Per-host state across the plays of one run. */
export interface HostState {
  host: InventoryHost;
  connection?: Connection;
  status: "active" | "failed" | "unreachable";
  counts: HostCounts;
  registered: Record<string, TaskResult>;
  notified: Set<string>;
  /** Check mode: paths an earlier task would have changed, so later facts about them are stale. */
  simulated: Set<string>;
}

export interface RunResult {
  hosts: Record<string, HostCounts>;
  failed: string[];
  unreachable: string[];
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
  unreachable: 4,
  input: 5,
  interrupted: 130,
} as const;

/** The exit code for a finished run: task failures first, then unreachable hosts. */
export function exitCodeFor(result: RunResult): number {
  if (result.interrupted) return EXIT.interrupted;
  if (result.failed.length > 0) return EXIT.failed;
  if (result.unreachable.length > 0) return EXIT.unreachable;
  return EXIT.ok;
}

/** A playbook with its per-host tasks already built and checked (no host contacted yet). */
export interface PreparedPlay {
  play: Play;
  hosts: string[];
  compiled: Map<string, CompiledHost>;
  unmatched: string[];
}

/** Resolves hosts and builds every task for every host; throws input errors before any SSH. */
export function preparePlaybook(
  playbook: Playbook,
  inventory: Inventory,
  file: string,
  limit?: string,
): PreparedPlay[] {
  const limited = limit ? new Set(matchHosts(inventory, limit).hosts) : undefined;
  return playbook.plays.map((play) => {
    const match = matchHosts(inventory, play.hosts);
    const hosts = match.hosts.filter((h) => !limited || limited.has(h));
    const compiled = new Map(
      hosts.map((h) => [h, compileHost(play, inventory.hosts.get(h) as InventoryHost, file)]),
    );
    return { play, hosts, compiled, unmatched: match.unmatched };
  });
}

/** Runs prepared plays in order, host batches in parallel up to `forks`. */
export async function runPlaybook(
  plays: PreparedPlay[],
  inventory: Inventory,
  options: RunOptions,
): Promise<RunResult> {
  const started = Date.now();
  const states = new Map<string, HostState>();
  const stateOf = (name: string) => {
    let state = states.get(name);
    if (!state) {
      state = {
        host: inventory.hosts.get(name) as InventoryHost,
        status: "active",
        counts: emptyCounts(),
        registered: {},
        notified: new Set(),
        simulated: new Set(),
      };
      states.set(name, state);
    }
    return state;
  };
  try {
    for (const prepared of plays) {
      const stop = await runPlay(prepared, stateOf, options);
      if (stop || options.signal?.aborted) break;
    }
  } finally {
    await Promise.all([...states.values()].map((s) => s.connection?.close()));
  }
  const result = summarize(states, options);
  options.sink({
    kind: "recap",
    hosts: result.hosts,
    check: options.check,
    durationMs: Date.now() - started,
  });
  return result;
}

function summarize(states: Map<string, HostState>, options: RunOptions): RunResult {
  const all = [...states.values()];
  return {
    hosts: Object.fromEntries(all.map((s) => [s.host.name, s.counts])),
    failed: all.filter((s) => s.status === "failed").map((s) => s.host.name),
    unreachable: all.filter((s) => s.status === "unreachable").map((s) => s.host.name),
    interrupted: options.signal?.aborted ?? false,
    commands: all.reduce((n, s) => n + (s.connection?.commandCount ?? 0), 0),
    channels: all.reduce((n, s) => n + (s.connection?.channelCount ?? 0), 0),
    bytesSent: all.reduce((n, s) => n + (s.connection?.bytesSent ?? 0), 0),
  };
}

/** Runs one play; returns true when the whole run must stop (a rollout budget was exceeded). */
async function runPlay(
  prepared: PreparedPlay,
  stateOf: (name: string) => HostState,
  options: RunOptions,
): Promise<boolean> {
  const { play } = prepared;
  const title = play.name ?? play.hosts;
  for (const term of prepared.unmatched)
    options.sink({ kind: "warning", message: `pattern '${term}' matched no hosts` });
  const hosts = prepared.hosts.filter((h) => stateOf(h).status === "active");
  if (hosts.length === 0) {
    options.sink({
      kind: "play-empty",
      play: title,
      pattern: play.hosts,
      warning: "no hosts matched; nothing to do",
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
    const stopped = await runBatch(prepared, batch.map(stateOf), title, options);
    await runHandlers(prepared, batch.map(stateOf), title, options);
    if (stopped) {
      options.sink({ kind: "play-stopped", play: title, message: stopped });
      return true;
    }
    if (options.signal?.aborted) return true;
  }
  return false;
}

/** Runs the tasks of a batch step by step; returns why the rollout stops, if it must. */
async function runBatch(
  prepared: PreparedPlay,
  batch: HostState[],
  title: string,
  options: RunOptions,
): Promise<string | undefined> {
  const steps = Math.max(
    ...batch.map((s) => prepared.compiled.get(s.host.name)?.tasks.length ?? 0),
  );
  for (let step = 0; step < steps; step += 1) {
    if (options.signal?.aborted) return undefined;
    const active = batch.filter(
      (s) => s.status === "active" && prepared.compiled.get(s.host.name)?.tasks[step],
    );
    await inPool(active, options.forks, async (state) => {
      const task = prepared.compiled.get(state.host.name)?.tasks[step];
      if (!task) return;
      if (!(await ensureConnected(state, title, task.name, options))) return;
      if (step === 0 && state.connection)
        announceFactReads(state.connection, prepared.compiled.get(state.host.name)?.tasks ?? []);
      record(state, await runTask(state, task, title, options));
    });
    const verdict = rolloutVerdict(prepared.play, batch);
    if (verdict) return verdict;
  }
  return undefined;
}

/** Applies anyErrorsFatal and maxFailPercentage against the batch size at its start. */
function rolloutVerdict(play: Play, batch: HostState[]): string | undefined {
  const failed = batch.filter((s) => s.status !== "active").length;
  if (failed === 0) return undefined;
  if (play.anyErrorsFatal)
    return `${failed} of ${batch.length} hosts failed and anyErrorsFatal is set`;
  if (play.maxFailPercentage === undefined) return undefined;
  const percent = (failed / batch.length) * 100;
  if (percent <= play.maxFailPercentage) return undefined;
  return `${failed} of ${batch.length} hosts failed (${Math.round(percent)}%) > ${play.maxFailPercentage}%: stopping the rollout; later batches are untouched`;
}

async function runHandlers(
  prepared: PreparedPlay,
  batch: HostState[],
  title: string,
  options: RunOptions,
) {
  const force = options.forceHandlers || prepared.play.forceHandlers === true;
  await inPool(batch, options.forks, async (state) => {
    const handlers = prepared.compiled.get(state.host.name)?.handlers ?? [];
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
    for (const handler of owed) {
      if (state.status === "unreachable") break;
      state.notified.delete(handler.id);
      record(state, await runTask(state, handler, title, options, true));
    }
  });
}

function record(state: HostState, outcome: TaskOutcome) {
  state.counts[outcome.status] += 1;
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
    state.connection = await openConnection(state.host, options.connect);
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
      error: describeUnreachable(err),
      durationMs: 0,
      check: options.check,
    });
    return false;
  }
}

function describeUnreachable(error: OmensError): string {
  return error.hint ? `${error.message}\n  hint: ${error.hint}` : error.message;
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
