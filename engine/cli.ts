import { existsSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { basename, dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { createInterface } from "node:readline";
import { ensureBecomePasswords } from "./become-password.js";
import { parseUsage } from "./usage.js";
import { describeError, inputError, OmensError, toOmensError } from "./errors.js";
import type { EventSink } from "./events.js";
import { loadInventory, type Inventory } from "./inventory/load.js";
import { matchHosts } from "./inventory/patterns.js";
import { jsonRenderer } from "./output/json.js";
import { withStdoutReserved } from "./output/reserve-stdout.js";
import { plainRenderer, type Terminal } from "./output/plain.js";
import { getDrift, type HostDrift } from "./output/report.js";
import { ttyRenderer } from "./output/tty.js";
import type { Playbook } from "./dsl/playbook.js";
import {
  EXIT,
  exitCodeFor,
  preparePlaybook,
  runPlaybook,
  startAtTask,
  type PreparedPlay,
  type RunResult,
  type StepAnswer,
} from "./runner/run.js";
import { compileHost, type CompiledHost } from "./runner/compile.js";
import { parseTagList, tagSelector } from "./runner/tags.js";
import { validateReportPath, writeReportFile, type RunReportFile } from "./report-file.js";
import { maskSecrets } from "./secret.js";

const USAGE = `usage: omens-play PLAYBOOK.ts [options]
       omens-play lint [PATH...] [options]   (check playbooks without any host; lint -h)

  -i, --inventory FILE   inventory YAML (default: $OMENS_INVENTORY or inventory/lab.yaml)
  -l, --limit PATTERN    only hosts matching PATTERN (names, groups, globs, !x, &x, @file)
  -C, --check            plan only: change nothing, report what a real run would do
  -D, --diff             show file and attribute diffs
  -f, --forks N          hosts worked on at once (default 5)
      --force-handlers   run notified handlers even on hosts where a later task failed
      --json             JSON Lines events on stdout; the last line is the recap
  -t, --tags TAGS        only tasks with one of these tags (comma-separated; always/never apply)
      --skip-tags TAGS   leave out tasks with one of these tags
      --start-at-task NAME  start at the first task with this name (or glob)
      --step             ask before each task: (y)es, (n)o, (c)ontinue without asking
      --list-hosts       print the hosts each play would run on, then stop (connects to none)
      --list-tasks       print each play's tasks and their tags, then stop (connects to none)
      --list-tags        print the tags the selected tasks use, then stop (connects to none);
                         with --json, the listings are one JSON document
      --retry-file FILE  where to list failed and unreachable hosts (default PLAYBOOK.retry)
      --fail-on-change   exit 6 when a task changed (with --check: would change) and nothing worse
      --report FILE      at the end, write the recap counts, probe health and changes as JSON
  -v, -vvv               show commands run (-v) and their output (-vvv)
  -h, --help             this text

exit codes: 0 success, 2 a task failed, 3 a health probe reported unhealthy,
            4 a host was unreachable, 5 bad input or usage,
            6 changes found (with --check: drift; only with --fail-on-change),
            1 internal error, 130 interrupted (129 on SIGHUP, 143 on SIGTERM)`;

/** Parsed command line. */
export interface CliOptions {
  playbook: string;
  inventory: string;
  limit?: string;
  check: boolean;
  diff: boolean;
  forks: number;
  forceHandlers: boolean;
  json: boolean;
  listHosts: boolean;
  listTasks: boolean;
  listTags: boolean;
  tags?: string[];
  skipTags?: string[];
  startAtTask?: string;
  step: boolean;
  retryFile?: string;
  failOnChange: boolean;
  reportFile?: string;
  verbosity: number;
}

/** Imports a playbook file; the start-up script gives one that uses compiled modules. */
export type PlaybookImporter = (file: string) => Promise<{ default?: unknown }>;

const importSource: PlaybookImporter = (file) => import(pathToFileURL(file).href);

/** Runs the CLI with the given arguments and returns the exit code. */
export async function main(
  argv: string[],
  terminal: Terminal = processTerminal(),
  importPlaybook: PlaybookImporter = importSource,
): Promise<number> {
  if (argv[0] === "lint")
    return (await import("./lint/cli.js")).lintMain(argv.slice(1), terminal, importPlaybook);
  let verbosity = 0;
  try {
    const options = parseCli(argv);
    if (options === "help") {
      terminal.out(USAGE);
      return EXIT.ok;
    }
    verbosity = options.verbosity;
    return await withStdoutReserved(options.json, () => play(options, terminal, importPlaybook));
  } catch (error) {
    return reportFatal(error, terminal, verbosity);
  }
}

function parseCli(argv: string[]): CliOptions | "help" {
  const verbosity = argv.reduce((n, a) => n + (/^-v+$/.test(a) ? a.length - 1 : 0), 0);
  const { values, positionals } = parseUsage(USAGE, {
    args: argv.filter((a) => !/^-v+$/.test(a)),
    allowPositionals: true,
    options: {
      inventory: { type: "string", short: "i" },
      limit: { type: "string", short: "l" },
      check: { type: "boolean", short: "C" },
      diff: { type: "boolean", short: "D" },
      forks: { type: "string", short: "f" },
      "force-handlers": { type: "boolean" },
      json: { type: "boolean" },
      "list-hosts": { type: "boolean" },
      "list-tasks": { type: "boolean" },
      "list-tags": { type: "boolean" },
      tags: { type: "string", short: "t" },
      "skip-tags": { type: "string" },
      "start-at-task": { type: "string" },
      step: { type: "boolean" },
      "retry-file": { type: "string" },
      "fail-on-change": { type: "boolean" },
      report: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  if (positionals.length !== 1)
    throw inputError(
      "usage",
      "USAGE",
      `expected one playbook file, got ${positionals.length}\n${USAGE}`,
    );
  const forks = Number(values.forks ?? 5);
  if (!Number.isInteger(forks) || forks < 1)
    throw inputError(
      "usage",
      "USAGE",
      `--forks must be a positive whole number, got "${values.forks}"`,
    );
  return {
    playbook: resolve(positionals[0] as string),
    inventory: resolve(inventoryPath(values.inventory)),
    ...optionalLimit(values.limit),
    check: values.check ?? false,
    diff: values.diff ?? false,
    forks,
    forceHandlers: values["force-handlers"] ?? false,
    json: values.json ?? false,
    listHosts: values["list-hosts"] ?? false,
    listTasks: values["list-tasks"] ?? false,
    listTags: values["list-tags"] ?? false,
    ...optionalList("tags", parseTagList(values.tags)),
    ...optionalList("skipTags", parseTagList(values["skip-tags"])),
    ...optionalValue("startAtTask", "--start-at-task", values["start-at-task"], (v) => v),
    step: values.step ?? false,
    ...optionalValue("retryFile", "--retry-file", values["retry-file"], resolve),
    failOnChange: values["fail-on-change"] ?? false,
    ...optionalValue("reportFile", "--report", values.report, resolve),
    verbosity,
  };
}

// An empty -i (or OMENS_INVENTORY) would resolve to the working folder: it is refused instead.
function inventoryPath(given: string | undefined): string {
  const path = given ?? process.env.OMENS_INVENTORY ?? "inventory/lab.yaml";
  if (path.trim() === "")
    throw inputError(
      "usage",
      "USAGE",
      given === undefined
        ? "OMENS_INVENTORY is set but empty"
        : "--inventory is given an empty value",
    );
  return path;
}

// An option given an empty value is refused rather than read as not given.
function optionalValue<K extends string>(
  key: K,
  option: string,
  value: string | undefined,
  read: (value: string) => string,
): { [key in K]?: string } {
  if (value === undefined) return {};
  if (value.trim() === "") throw inputError("usage", "USAGE", `${option} is given an empty value`);
  return { [key]: read(value) } as { [key in K]?: string };
}

// An empty limit is refused rather than read as "no limit": it would run on every host.
function optionalLimit(limit: string | undefined): { limit?: string } {
  if (limit !== undefined && /^[\s,:]*$/.test(limit))
    throw inputError("usage", "USAGE", "--limit names no host");
  return limit === undefined ? {} : { limit };
}

function optionalList<K extends string>(key: K, list: string[] | undefined) {
  if (list?.length === 0)
    throw inputError("usage", "USAGE", `--${key === "skipTags" ? "skip-tags" : key} names no tag`);
  return (list === undefined ? {} : { [key]: list }) as Partial<Record<K, string[]>>;
}

async function play(
  options: CliOptions,
  terminal: Terminal,
  importPlaybook: PlaybookImporter,
): Promise<number> {
  if (options.step && !terminal.ask)
    throw inputError(
      "usage",
      "USAGE",
      "--step asks before each task, so it needs a terminal on standard input; run it interactively",
    );
  if (options.reportFile) validateReportPath(options.reportFile);
  if (options.retryFile) validateRetryPath(options.retryFile);
  const inventory = loadInventory(options.inventory);
  const playbook = await loadPlaybook(options.playbook, importPlaybook);
  const select = tagSelector({
    ...(options.tags ? { only: options.tags } : {}),
    ...(options.skipTags ? { skip: options.skipTags } : {}),
  });
  const prepared = preparePlaybook(playbook, inventory, options.playbook, {
    ...(options.limit ? { limit: options.limit } : {}),
    select,
  });
  const plays = options.startAtTask ? startAtTask(prepared, options.startAtTask) : prepared;
  const tagWarnings = unknownTags(playbook, inventory, options);
  if (options.listHosts || options.listTasks || options.listTags) {
    for (const term of options.limit ? matchHosts(inventory, options.limit).unmatched : [])
      terminal.err(`warning: --limit: pattern '${term}' matched no hosts`);
    tagWarnings.forEach((message) => terminal.err(`warning: ${message}`));
    return listOnly(plays, options, terminal);
  }
  const hosts = [...new Set(plays.flatMap((p) => p.hosts))];
  await ensureBecomePasswords(inventory, hosts, (host) =>
    plays.some((p) => p.compiled.get(host)?.tasks.some((t) => t.become === true)),
  );
  const sink = chooseRenderer(options, terminal);
  sink({ kind: "run-start", playbook: playbook.name, check: options.check, hosts });
  const unmatched = options.limit ? matchHosts(inventory, options.limit).unmatched : [];
  for (const term of unmatched)
    sink({ kind: "warning", message: `--limit: pattern '${term}' matched no hosts` });
  tagWarnings.forEach((message) => sink({ kind: "warning", message }));
  // With no host at all, no play runs: one warning says so, not one more per play.
  if (hosts.length === 0 && unmatched.length === 0) warnNothing(options, sink);
  const stop = stopOnSignals(sink);
  try {
    const result = await runPlaybook(hosts.length > 0 ? plays : [], inventory, {
      ...options,
      sink,
      signal: stop.signal,
      ...(options.step && terminal.ask ? { confirm: stepPrompt(terminal.ask) } : {}),
    });
    writeRetryFile(result, options, sink);
    if (options.reportFile)
      writeReport(options.reportFile, playbook.name, options.check, result, sink);
    if (options.verbosity >= 1) sink({ kind: "notice", message: statistics(result) });
    if (result.interrupted) return stop.exitCode();
    return exitCodeFor(result, { failOnChange: options.failOnChange });
  } finally {
    stop.remove();
    closeAnswers();
    await sink.close?.();
  }
}

/** The `-v` summary line: how much talking to hosts the run took. */
function statistics(result: RunResult): string {
  const hosts = Object.keys(result.hosts).length;
  const kb = (result.bytesSent / 1024).toFixed(1);
  return `statistics: ${result.commands} remote commands over ${result.channels} SSH channels on ${hosts} hosts, ${kb} KiB sent`;
}

/** JSON Lines when asked, a live listr2 list on a terminal, plain lines otherwise. */
function chooseRenderer(
  options: CliOptions,
  terminal: Terminal,
): EventSink & { close?: () => Promise<void> } {
  if (options.json) return jsonRenderer(terminal);
  // The live list redraws the screen, so --step's questions get plain lines.
  if (terminal.tty && !options.step) return ttyRenderer(terminal, { showDiff: options.diff });
  return plainRenderer(terminal, { showDiff: options.diff });
}

/** The signals that stop a run: Ctrl-C, a service manager's stop, a closed terminal. */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

/**
 * Listens for the stop signals during a run. The first one lets running tasks finish and
 * starts no new one, so the recap, the handlers left unrun and the retry file are still
 * written; a second one quits at once. Either way the exit code is 128 + the signal's number.
 */
function stopOnSignals(sink: EventSink) {
  const controller = new AbortController();
  // Only these listeners stop the run, so a stopped run always has a signal to report.
  let received: StopSignal = "SIGINT";
  const onSignal = (name: StopSignal) => {
    if (controller.signal.aborted) process.exit(signalExitCode(name));
    received = name;
    const again =
      name === "SIGINT"
        ? "Ctrl-C again to quit at once"
        : `${name} received; Ctrl-C or another ${name} quits at once`;
    sink({
      kind: "warning",
      message: `interrupted: running tasks finish, no new task starts (${again})`,
    });
    controller.abort();
  };
  const listeners = STOP_SIGNALS.map((name) => [name, () => onSignal(name)] as const);
  listeners.forEach(([name, listener]) => process.on(name, listener));
  return {
    signal: controller.signal,
    exitCode: () => signalExitCode(received),
    remove: () => listeners.forEach(([name, listener]) => process.off(name, listener)),
  };
}

function signalExitCode(name: StopSignal): number {
  return 128 + constants.signals[name];
}

function warnNothing(options: CliOptions, sink: EventSink) {
  const what = options.limit ? `--limit '${options.limit}'` : "the playbook's host patterns";
  sink({ kind: "warning", message: `no hosts matched ${what}; no connection opened` });
}

/** A file that can hold a playbook: a TypeScript or JavaScript module. */
export const PLAYBOOK_FILE = /\.m?[tj]s$/;

/** Imports a playbook module; a load failure names the file and line it came from. */
export async function loadPlaybook(
  file: string,
  importPlaybook: PlaybookImporter = importSource,
): Promise<Playbook> {
  if (!existsSync(file))
    throw inputError("usage", "PLAYBOOK_MISSING", `playbook not found: ${file}`, { file });
  if (statSync(file).isDirectory())
    throw inputError(
      "usage",
      "PLAYBOOK_IS_FOLDER",
      `${file} is a folder: give one playbook file (omens-play lint takes folders)`,
    );
  if (!PLAYBOOK_FILE.test(file))
    throw inputError(
      "usage",
      "PLAYBOOK_KIND",
      `${file} is not a playbook: omens-play runs TypeScript or JavaScript modules (.ts, .mts, .js, .mjs) whose default export is definePlaybook(...)`,
    );
  let module: { default?: unknown };
  try {
    module = await importPlaybook(file);
  } catch (error) {
    if (error instanceof OmensError) throw error;
    throw toOmensError(error, {
      code: "PLAYBOOK_LOAD",
      family: "playbook",
      where: locate(error, file),
    });
  }
  const playbook = module.default as Playbook | undefined;
  if (playbook?.kind !== "playbook") {
    throw inputError(
      "playbook",
      "PLAYBOOK_EXPORT",
      `${basename(file)} must export a playbook as default: export default definePlaybook(...)`,
      { file },
    );
  }
  return playbook;
}

/** The first stack frame inside the project (not node_modules) of an error thrown on load. */
function locate(error: unknown, file: string) {
  const stack = error instanceof Error ? (error.stack ?? "") : "";
  const root = dirname(dirname(file));
  const frame = stack
    .split("\n")
    .map((l) => /((?:file:\/\/)?\/[^():]+):(\d+):(\d+)/.exec(l))
    .find(
      (m) => m && !m[1]?.includes("node_modules") && m[1]?.includes(root.replace(/^file:\/\//, "")),
    );
  if (!frame) return { file };
  return {
    file: (frame[1] as string).replace(/^file:\/\//, ""),
    line: Number(frame[2]),
    column: Number(frame[3]),
  };
}

/** `--step`: asks on the terminal until the answer is yes, no or continue. */
function stepPrompt(ask: (question: string) => Promise<string>) {
  let continued = false;
  return async (task: string): Promise<StepAnswer> => {
    while (!continued) {
      const answer = (await ask(`Perform task "${task}"? (y)es/(n)o/(c)ontinue: `)).trim();
      if (/^y(es)?$/i.test(answer)) return "yes";
      if (/^n(o)?$/i.test(answer)) return "no";
      continued = /^c(ontinue)?$/i.test(answer);
    }
    return "continue";
  };
}

/** Tags whose meaning is a rule, not a name a task carries. */
const SPECIAL_TAGS = new Set(["all", "tagged", "untagged", "always", "never"]);

/**
 * `--tags` or `--skip-tags` naming a tag no task of the playbook carries, on any host: a
 * misspelt tag that would otherwise run nothing, or skip nothing, without a word.
 */
function unknownTags(playbook: Playbook, inventory: Inventory, options: CliOptions): string[] {
  const named = [
    ...(options.tags ?? []).map((tag) => ["--tags", tag] as const),
    ...(options.skipTags ?? []).map((tag) => ["--skip-tags", tag] as const),
  ].filter(([, tag]) => !SPECIAL_TAGS.has(tag));
  if (named.length === 0) return [];
  // Every play for every host, matched or not: a play for hosts this inventory lacks still
  // carries its tags. A play that builds for no host at all (its roles need variables no host
  // has) has tags nobody can know, so then nothing is said.
  const known = new Set<string>();
  for (const play of playbook.plays) {
    let built = false;
    for (const host of inventory.hosts.values()) {
      let compiled: CompiledHost;
      try {
        compiled = compileHost(play, host, options.playbook, undefined, inventory.hosts);
      } catch {
        continue;
      }
      built = true;
      for (const entry of compiled.program)
        if (entry.kind === "task") entry.task.tags.forEach((tag) => known.add(tag));
    }
    if (!built) return [];
  }
  const tags = [...known].sort().join(", ") || "none";
  return named
    .filter(([, tag]) => !known.has(tag))
    .map(([flag, tag]) => `${flag}: no task of the playbook has tag '${tag}' (its tags: ${tags})`);
}

/** `--list-hosts`, `--list-tasks`, `--list-tags`: built from the playbook alone, no host contacted. */
function listOnly(plays: PreparedPlay[], options: CliOptions, terminal: Terminal): number {
  if (options.json) return listJson(plays, options, terminal);
  const allTags = new Set<string>();
  for (const prepared of plays) {
    terminal.out(
      `play ${prepared.play.name ?? prepared.play.hosts} (hosts: ${prepared.play.hosts})`,
    );
    if (options.listHosts) {
      terminal.out(`  hosts (${prepared.hosts.length}):`);
      prepared.hosts.forEach((h) => terminal.out(`    ${h}`));
    }
    const tasks = listedTasks(prepared);
    tasks.forEach((t) => t.tags.forEach((tag) => allTags.add(tag)));
    if (options.listTasks) {
      terminal.out("  tasks:");
      tasks.forEach((t) =>
        terminal.out(`    ${t.name}${t.tags.length > 0 ? `  [tags: ${t.tags.join(", ")}]` : ""}`),
      );
    }
  }
  if (options.listTags) terminal.out(`tags: ${[...allTags].sort().join(", ") || "(none)"}`);
  return EXIT.ok;
}

/**
 * The listings as one JSON document: `{"plays": [{"name", "pattern", "hosts"?, "tasks"?}],
 * "tags"?}`, each part present when its option was given.
 */
function listJson(plays: PreparedPlay[], options: CliOptions, terminal: Terminal): number {
  const allTags = new Set<string>();
  const listed = plays.map((prepared) => {
    const tasks = listedTasks(prepared);
    tasks.forEach((t) => t.tags.forEach((tag) => allTags.add(tag)));
    return {
      name: prepared.play.name ?? prepared.play.hosts,
      pattern: prepared.play.hosts,
      ...(options.listHosts ? { hosts: prepared.hosts } : {}),
      ...(options.listTasks ? { tasks } : {}),
    };
  });
  const tags = options.listTags ? { tags: [...allTags].sort() } : {};
  terminal.out(JSON.stringify({ plays: listed, ...tags }));
  return EXIT.ok;
}

/** The tasks a play runs, in order, from its first host (the one `--start-at-task` may move). */
function listedTasks(prepared: PreparedPlay) {
  const [host, compiled] = prepared.compiled.entries().next().value ?? [];
  if (!compiled) return [];
  const start = prepared.start?.get(host as string) ?? 0;
  return compiled.program
    .slice(start)
    .flatMap((e) => (e.kind === "task" ? [{ name: e.task.name, tags: e.task.tags }] : []));
}

/** Refuses a retry-file path whose folder does not exist, before any host is contacted. */
function validateRetryPath(file: string) {
  const dir = dirname(file);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw inputError(
      "usage",
      "RETRY_DIR",
      `--retry-file ${file}: the folder ${dir} does not exist`,
      {},
      "create the folder first, or give another path",
    );
  if (existsSync(file) && statSync(file).isDirectory())
    throw inputError(
      "usage",
      "RETRY_IS_FOLDER",
      `--retry-file ${file}: this is a folder, not a file`,
    );
}

// The run has happened, so a retry file that cannot be written is a warning: the exit code
// still tells how the run went.
function writeRetryFile(result: RunResult, options: CliOptions, sink: EventSink) {
  const hosts = [...result.failed, ...result.unreachable];
  if (hosts.length === 0) return;
  const file = options.retryFile ?? options.playbook.replace(/\.[cm]?[tj]s$/, "") + ".retry";
  const temp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(temp, hosts.join("\n") + "\n");
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    sink({
      kind: "warning",
      message: `cannot write the retry file ${file}: ${(error as Error).message}`,
    });
    return;
  }
  sink({
    kind: "warning",
    message: `failed and unreachable hosts listed in ${file}; retry with --limit @${file}`,
  });
}

// The run has happened, so a report that cannot be written is a warning, not bad input.
function writeReport(
  file: string,
  playbook: string,
  check: boolean,
  result: RunResult,
  sink: EventSink,
) {
  const { hosts, health, changes } = result;
  // In check mode `drift` says per host whether it was checked to the end: `changes` alone
  // cannot tell a host with nothing to change from one whose run stopped early.
  const report: RunReportFile & { drift?: HostDrift[] } = {
    playbook,
    check,
    hosts,
    health,
    changes,
    ...(check ? { drift: getDrift(hosts, changes, result.interrupted) } : {}),
  };
  try {
    writeReportFile(file, report);
  } catch (error) {
    sink({
      kind: "warning",
      message: `--report: cannot write ${file}: ${(error as Error).message}`,
    });
  }
}

function reportFatal(error: unknown, terminal: Terminal, verbosity: number): number {
  const err =
    error instanceof OmensError ? error : toOmensError(error, { code: "BUG", family: "bug" });
  terminal.err(maskSecrets(`error: ${describeError(err)}`));
  // The original error's stack says where it was thrown; the wrapper's only where it was caught.
  const stack = err.cause instanceof Error ? err.cause.stack : err.stack;
  if (verbosity >= 3 && stack) terminal.err(maskSecrets(stack));
  return err.family === "bug" ? EXIT.bug : EXIT.input;
}

/**
 * Writes to a stream until its reader goes away (`omens-play ... | head`, or `2>&1 | head`):
 * that must not stop a run halfway, so the run goes on to its end and what it would still
 * have printed there is dropped.
 */
function writerUntilEpipe(stream: NodeJS.WriteStream): (text: string) => void {
  let readerGone = false;
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    readerGone = true;
  });
  return (text) => {
    if (!readerGone) stream.write(text);
  };
}

/** The narrowest terminal the live list is drawn on. */
const MIN_LIVE_COLUMNS = 20;

function processTerminal(): Terminal {
  const out = writerUntilEpipe(process.stdout);
  const err = writerUntilEpipe(process.stderr);
  return {
    out: (line) => out(line + "\n"),
    err: (line) => err(line + "\n"),
    color: process.stdout.isTTY === true && !process.env.NO_COLOR,
    // A terminal that reports no width (a pseudo-terminal nobody sized) would get the live
    // list one character per line: it gets plain lines instead.
    tty:
      process.stdout.isTTY === true &&
      (process.stdout.columns ?? 0) >= MIN_LIVE_COLUMNS &&
      process.env.OMENS_PLAIN === undefined,
    ...(process.stdin.isTTY === true ? { ask } : {}),
  };
}

/**
 * One question on the terminal; the answer line without its newline. One reader serves every
 * question, so answers typed ahead (or piped into a terminal) are queued, not lost.
 */
function ask(question: string): Promise<string> {
  process.stderr.write(question);
  const reader = (answers ??= openAnswers());
  const ready = reader.lines.shift();
  if (ready !== undefined) return Promise.resolve(ready);
  return new Promise((resolve) => reader.waiting.push(resolve));
}

let answers: { lines: string[]; waiting: ((line: string) => void)[]; close(): void } | undefined;

function openAnswers() {
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  const reader = createInterface({ input: process.stdin, terminal: false });
  reader.on("line", (line) => {
    const next = waiting.shift();
    if (next) next(line);
    else lines.push(line);
  });
  reader.on("close", () => waiting.splice(0).forEach((resolve) => resolve("n")));
  return { lines, waiting, close: () => reader.close() };
}

/** Stops reading the terminal so the process can exit. */
function closeAnswers() {
  answers?.close();
  answers = undefined;
}
