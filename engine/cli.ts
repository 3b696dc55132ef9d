import { existsSync, writeFileSync, renameSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { ensureBecomePasswords } from "./become-password.js";
import { describeError, inputError, OmensError, toOmensError } from "./errors.js";
import type { EventSink } from "./events.js";
import { loadInventory } from "./inventory/load.js";
import { jsonRenderer } from "./output/json.js";
import { plainRenderer, type Terminal } from "./output/plain.js";
import { ttyRenderer } from "./output/tty.js";
import type { Playbook } from "./dsl/playbook.js";
import {
  EXIT,
  exitCodeFor,
  preparePlaybook,
  runPlaybook,
  type PreparedPlay,
  type RunResult,
} from "./runner/run.js";
import { maskSecrets } from "./secret.js";

const USAGE = `usage: omens-play PLAYBOOK.ts [options]

  -i, --inventory FILE   inventory YAML (default: $OMENS_INVENTORY or inventory/lab.yaml)
  -l, --limit PATTERN    only hosts matching PATTERN (names, groups, globs, !x, &x, @file)
  -C, --check            plan only: change nothing, report what a real run would do
  -D, --diff             show file and attribute diffs
  -f, --forks N          hosts worked on at once (default 5)
      --force-handlers   run notified handlers even on hosts where a later task failed
      --json             JSON Lines events on stdout; the last line is the recap
      --list-hosts       print the hosts each play would run on, then stop
      --list-tasks       print each play's tasks, then stop
      --retry-file FILE  where to list failed and unreachable hosts (default PLAYBOOK.retry)
  -v, -vvv               show commands run (-v) and their output (-vvv)
  -h, --help             this text

exit codes: 0 success, 2 a task failed, 4 a host was unreachable, 5 bad input or usage,
            1 internal error, 130 interrupted`;

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
  retryFile?: string;
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
  let verbosity = 0;
  try {
    const options = parseCli(argv);
    if (options === "help") {
      terminal.out(USAGE);
      return EXIT.ok;
    }
    verbosity = options.verbosity;
    return await play(options, terminal, importPlaybook);
  } catch (error) {
    return reportFatal(error, terminal, verbosity);
  }
}

function parseCli(argv: string[]): CliOptions | "help" {
  const verbosity = argv.reduce((n, a) => n + (/^-v+$/.test(a) ? a.length - 1 : 0), 0);
  const { values, positionals } = parseArgs({
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
      "retry-file": { type: "string" },
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
    inventory: resolve(values.inventory ?? process.env.OMENS_INVENTORY ?? "inventory/lab.yaml"),
    ...(values.limit ? { limit: values.limit } : {}),
    check: values.check ?? false,
    diff: values.diff ?? false,
    forks,
    forceHandlers: values["force-handlers"] ?? false,
    json: values.json ?? false,
    listHosts: values["list-hosts"] ?? false,
    listTasks: values["list-tasks"] ?? false,
    ...(values["retry-file"] ? { retryFile: resolve(values["retry-file"]) } : {}),
    verbosity,
  };
}

async function play(
  options: CliOptions,
  terminal: Terminal,
  importPlaybook: PlaybookImporter,
): Promise<number> {
  const inventory = loadInventory(options.inventory);
  const playbook = await loadPlaybook(options.playbook, importPlaybook);
  const plays = preparePlaybook(playbook, inventory, options.playbook, options.limit);
  if (options.listHosts || options.listTasks) return listOnly(plays, options, terminal);
  const hosts = [...new Set(plays.flatMap((p) => p.hosts))];
  await ensureBecomePasswords(inventory, hosts, (host) =>
    plays.some((p) => p.compiled.get(host)?.tasks.some((t) => t.task.options.become === true)),
  );
  const sink = chooseRenderer(options, terminal);
  sink({ kind: "run-start", playbook: playbook.name, check: options.check, hosts });
  if (hosts.length === 0) warnNothing(options, sink);
  const controller = new AbortController();
  const onSigint = () => interrupt(controller, sink);
  process.on("SIGINT", onSigint);
  try {
    const result = await runPlaybook(plays, inventory, {
      ...options,
      sink,
      signal: controller.signal,
    });
    writeRetryFile(result, options, sink);
    if (options.verbosity >= 1) sink({ kind: "warning", message: statistics(result) });
    return exitCodeFor(result);
  } finally {
    process.off("SIGINT", onSigint);
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
  if (terminal.tty) return ttyRenderer(terminal, { showDiff: options.diff });
  return plainRenderer(terminal, { showDiff: options.diff });
}

function interrupt(controller: AbortController, sink: EventSink) {
  if (controller.signal.aborted) process.exit(EXIT.interrupted);
  sink({
    kind: "warning",
    message: "interrupted: running tasks finish, no new task starts (Ctrl-C again to quit at once)",
  });
  controller.abort();
}

function warnNothing(options: CliOptions, sink: EventSink) {
  const what = options.limit ? `--limit '${options.limit}'` : "the playbook's host patterns";
  sink({ kind: "warning", message: `no hosts matched ${what}; no connection opened` });
}

/** Imports a playbook module; a load failure names the file and line it came from. */
export async function loadPlaybook(
  file: string,
  importPlaybook: PlaybookImporter = importSource,
): Promise<Playbook> {
  if (!existsSync(file))
    throw inputError("usage", "PLAYBOOK_MISSING", `playbook not found: ${file}`, { file });
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

function listOnly(plays: PreparedPlay[], options: CliOptions, terminal: Terminal): number {
  for (const prepared of plays) {
    terminal.out(
      `play ${prepared.play.name ?? prepared.play.hosts} (hosts: ${prepared.play.hosts})`,
    );
    if (options.listHosts) prepared.hosts.forEach((h) => terminal.out(`  ${h}`));
    if (options.listTasks) {
      const first = prepared.compiled.values().next().value;
      (first?.tasks ?? []).forEach((t) =>
        terminal.out(
          `  ${t.name}${t.task.options.tags ? `  tags: ${t.task.options.tags.join(",")}` : ""}`,
        ),
      );
    }
  }
  return EXIT.ok;
}

function writeRetryFile(result: RunResult, options: CliOptions, sink: EventSink) {
  const hosts = [...result.failed, ...result.unreachable];
  if (hosts.length === 0) return;
  const file = options.retryFile ?? options.playbook.replace(/\.[cm]?[tj]s$/, "") + ".retry";
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, hosts.join("\n") + "\n");
  renameSync(temp, file);
  sink({
    kind: "warning",
    message: `failed and unreachable hosts listed in ${file}; retry with --limit @${file}`,
  });
}

function reportFatal(error: unknown, terminal: Terminal, verbosity: number): number {
  const err =
    error instanceof OmensError ? error : toOmensError(error, { code: "BUG", family: "bug" });
  terminal.err(maskSecrets(`error: ${describeError(err)}`));
  if (verbosity >= 3 && err.stack) terminal.err(maskSecrets(err.stack));
  return err.family === "bug" ? EXIT.bug : EXIT.input;
}

function processTerminal(): Terminal {
  return {
    out: (line) => process.stdout.write(line + "\n"),
    err: (line) => process.stderr.write(line + "\n"),
    color: process.stdout.isTTY === true && !process.env.NO_COLOR,
    tty: process.stdout.isTTY === true && process.env.OMENS_PLAIN === undefined,
  };
}
