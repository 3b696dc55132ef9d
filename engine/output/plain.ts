import type { DiffEntry, EventSink, HostCounts, OmensEvent } from "../events.js";
import { maskSecrets } from "../secret.js";
import { renderDrift, renderHealth } from "./report.js";

/** Where a renderer writes; stdout for results, stderr for warnings. */
export interface Terminal {
  out(line: string): void;
  err(line: string): void;
  color: boolean;
  /** A live terminal: the listr2 renderer is used unless JSON was asked for. */
  tty?: boolean;
  /** Asks a question on the terminal (present only when standard input is a terminal). */
  ask?: (question: string) => Promise<string>;
}

const SYMBOL = { ok: "ok", changed: "~", skipped: "-", failed: "x", unreachable: "!" } as const;
const COLOR = { ok: 32, changed: 33, skipped: 36, failed: 31, unreachable: 35 } as const;

/** Plain lines, one per event, for logs and CI; the recap table ends the run. */
export function plainRenderer(terminal: Terminal, options: { showDiff: boolean }): EventSink {
  const paint = (code: number, text: string) =>
    terminal.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  const out = (line: string) => terminal.out(maskSecrets(line));
  return (event: OmensEvent) => {
    switch (event.kind) {
      case "run-start":
        return out(
          `PLAYBOOK ${event.playbook}${event.check ? "  (check mode: nothing will change)" : ""}`,
        );
      case "play-start": {
        const batch = event.batch ? ` (batch ${event.batch.index} of ${event.batch.of})` : "";
        return out(
          `\nPLAY ${event.play}${batch} ${"".padEnd(Math.max(0, 50 - event.play.length - batch.length), ".")} [${event.hosts.join(", ")}]`,
        );
      }
      case "play-empty":
        return terminal.err(maskSecrets(`warning: play "${event.play}": ${event.warning}`));
      case "warning":
        return terminal.err(
          maskSecrets(`warning: ${event.host ? `[${event.host}] ` : ""}${event.message}`),
        );
      case "notice":
        return terminal.err(maskSecrets(event.message));
      case "task-result":
        return renderResult(event, out, paint, options.showDiff);
      case "task-retry":
        return out(
          `  ${paint(COLOR.changed, "r ")} ${describeTask(event).padEnd(52)} ${event.host.padEnd(8)} retrying (attempt ${event.attempt} of ${event.of} done, next in ${event.delayMs} ms): ${event.reason.split("\n")[0]}`,
        );
      case "command":
        return out(`      [${event.host}] $ ${event.command.split("\n").join("\n        ")}`);
      case "command-output":
        return out(
          `      [${event.host}] rc=${event.rc}${indentBlock("stdout", event.stdout)}${indentBlock("stderr", event.stderr)}`,
        );
      case "handlers-pending":
        return out(
          `  ! ${event.host}: notified, not run: ${event.handlers.join(", ")} (${event.reason})`,
        );
      case "play-stopped":
        return out(paint(COLOR.failed, `  STOPPED ${event.play}: ${event.message}`));
      case "recap":
        renderRecap(event.hosts, event.check, event.durationMs, out, paint);
        if (event.untouched)
          out(`  untouched (the rollout stopped before them): ${event.untouched.join(", ")}`);
        return renderReport(event, out, paint);
      default:
        return undefined;
    }
  };
}

function renderResult(
  event: Extract<OmensEvent, { kind: "task-result" }>,
  out: (line: string) => void,
  paint: (code: number, text: string) => string,
  showDiff: boolean,
) {
  const status = `${event.check && event.status === "changed" ? "would change" : event.status}${event.rescued ? " (rescued)" : event.ignored ? " (ignored)" : ""}`;
  const task = describeTask(event);
  const symbol = paint(COLOR[event.status], SYMBOL[event.status].padEnd(2));
  const host = `${event.host}${event.delegate ? ` -> ${event.delegate}` : ""}`;
  const reason =
    event.reason && event.status !== "failed" && event.status !== "unreachable"
      ? `  ${oneLine(event.reason)}`
      : "";
  out(
    `  ${symbol} ${task.padEnd(52)} ${host.padEnd(8)} ${paint(COLOR[event.status], status)}${reason} (${event.durationMs} ms)`,
  );
  if (event.error) out(indent(event.error, 6));
  if (event.at && !event.error?.includes(event.at)) out(`      at ${event.at}`);
  if (showDiff && event.diff) event.diff.forEach((d) => out(renderDiff(d, paint)));
}

/** The task's name as shown: handlers, loop items and run-once tasks are marked. */
function describeTask(event: {
  task: string;
  handler?: boolean;
  item?: string;
  runOnce?: boolean;
}): string {
  const item = event.item === undefined ? "" : ` (item ${event.item})`;
  return `${event.handler ? "handler " : ""}${event.task}${item}${event.runOnce ? " (run once)" : ""}`;
}

function renderDiff(diff: DiffEntry, paint: (code: number, text: string) => string): string {
  if (diff.hidden) return `      ${diff.path}: diff hidden (${diff.why ?? "noLog"})`;
  const lines = [`      --- ${diff.path}`];
  for (const attribute of diff.attributes ?? []) lines.push(`      attr ${attribute}`);
  for (const line of (diff.content ?? "").split("\n")) {
    if (line === "") continue;
    const color = line.startsWith("+")
      ? 32
      : line.startsWith("-")
        ? 31
        : line.startsWith("@@")
          ? 36
          : 0;
    lines.push(`      ${color ? paint(color, line) : line}`);
  }
  return lines.join("\n");
}

function renderRecap(
  hosts: Record<string, HostCounts>,
  check: boolean,
  ms: number,
  out: (line: string) => void,
  paint: (code: number, text: string) => string,
) {
  out(`\nRECAP${check ? " (check mode: nothing changed)" : ""}  ${(ms / 1000).toFixed(2)} s`);
  for (const [host, c] of Object.entries(hosts)) {
    const bad =
      c.failed > 0
        ? COLOR.failed
        : c.unreachable > 0
          ? COLOR.unreachable
          : c.changed > 0
            ? COLOR.changed
            : COLOR.ok;
    out(
      `  ${paint(bad, host.padEnd(12))} ok=${c.ok} changed=${c.changed} failed=${c.failed} skipped=${c.skipped} unreachable=${c.unreachable} rescued=${c.rescued} ignored=${c.ignored}`,
    );
  }
}

/** After the recap: the HEALTH table when probes ran, and in check mode the DRIFT section. */
function renderReport(
  event: Extract<OmensEvent, { kind: "recap" }>,
  out: (line: string) => void,
  paint: (code: number, text: string) => string,
) {
  if (event.health) ["", ...renderHealth(event.health, paint)].forEach(out);
  if (event.check)
    ["", ...renderDrift(event.hosts, event.changes ?? [], event.interrupted)].forEach(out);
}

function indent(text: string, spaces: number): string {
  return text
    .split("\n")
    .map((line) => " ".repeat(spaces) + line)
    .join("\n");
}

function indentBlock(label: string, text: string): string {
  return text.trim() === "" ? "" : `\n        ${label}:\n${indent(text.trimEnd(), 10)}`;
}

/** A reason on a result line: its first line, cut at 200 characters, marked when cut. */
function oneLine(text: string): string {
  const first = text.split("\n")[0] ?? "";
  const cut = first.slice(0, 200);
  return cut === text ? text : `${cut} ...`;
}
