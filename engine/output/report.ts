import type { ChangeRow, HealthRow, HostCounts } from "../events.js";

/** Paints text in an ANSI color, or leaves it as it is when the terminal has none. */
export type Paint = (code: number, text: string) => string;

const RED = 31;
const NO_PAINT: Paint = (_code, text) => text;

/**
 * The HEALTH table printed after the recap: one aligned row per probe, then a count.
 *
 * @example
 * renderHealth([{ host: "auth", component: "sshd", check: "active", healthy: true, detail: "active" }])
 * // ["HEALTH", "  host  component  check   status  detail", "  auth  sshd       active  ok      active", "  1 checks, 0 unhealthy"]
 */
export function renderHealth(rows: readonly HealthRow[], paint: Paint = NO_PAINT): string[] {
  const cells = rows.map((r) => [r.host, r.component, r.check, r.healthy ? "ok" : "UNHEALTHY"]);
  const widths = [0, 1, 2, 3].map((i) =>
    Math.max(HEADER[i]?.length ?? 0, ...cells.map((c) => c[i]?.length ?? 0)),
  );
  const line = (values: string[], detail: string, bad = false) => {
    const padded = values.map((v, i) => v.padEnd(widths[i] ?? 0));
    if (bad) padded[3] = paint(RED, padded[3] ?? "");
    return `  ${padded.join("  ")}  ${detail}`.trimEnd();
  };
  const unhealthy = rows.filter((r) => !r.healthy).length;
  return [
    "HEALTH",
    line(HEADER.slice(0, 4), HEADER[4] as string),
    ...rows.map((r, i) => line(cells[i] as string[], r.detail, !r.healthy)),
    `  ${rows.length} checks, ${unhealthy} unhealthy`,
  ];
}

const HEADER = ["host", "component", "check", "status", "detail"];

/** Why a host's drift is not known: its run stopped before the end. */
export type NotCheckedReason = "a task failed" | "unreachable" | "the run was interrupted";

/**
 * One host's drift in a check-mode run, as the `--report` file's `drift` section holds it. A
 * host whose run stopped early was not fully checked, so it is never reported drift-free; the
 * tasks that would have changed before it stopped are still counted.
 */
export type HostDrift =
  | { host: string; checked: true; wouldChange: number }
  | { host: string; checked: false; reason: NotCheckedReason; wouldChange: number };

/**
 * Each host's drift, in recap order, from its recap counts and the change rows.
 *
 * @example
 * getDrift({ auth: { ...emptyCounts(), failed: 1 } }, [])
 * // [{ host: "auth", checked: false, reason: "a task failed", wouldChange: 0 }]
 */
export function getDrift(
  hosts: Readonly<Record<string, HostCounts>>,
  changes: readonly ChangeRow[],
  interrupted = false,
): HostDrift[] {
  return Object.entries(hosts).map(([host, counts]) => {
    const wouldChange = changes
      .filter((c) => c.host === host)
      .reduce((n, r) => n + r.tasks.length, 0);
    const reason = notCheckedReason(counts, interrupted);
    return reason
      ? { host, checked: false, reason, wouldChange }
      : { host, checked: true, wouldChange };
  });
}

// An unreachable host stops there; a failed task (not rescued, not ignored) stops the host too.
// A run stopped by a signal leaves every other host unfinished: even one that had ended its
// play had later plays ahead of it, so none of them is reported drift-free.
function notCheckedReason(counts: HostCounts, interrupted: boolean): NotCheckedReason | undefined {
  if (counts.unreachable > 0) return "unreachable";
  if (counts.failed > 0) return "a task failed";
  if (interrupted) return "the run was interrupted";
  return undefined;
}

/**
 * The DRIFT section of a check-mode run: per host, each role whose tasks would change, with
 * their count and names; "no drift" for a host where nothing would change; "not checked" for a
 * host whose run stopped early, since what its remaining tasks would do is not known.
 */
export function renderDrift(
  hosts: Readonly<Record<string, HostCounts>>,
  changes: readonly ChangeRow[],
  interrupted = false,
): string[] {
  const width = Math.max(0, ...Object.keys(hosts).map((h) => h.length));
  const lines = ["DRIFT (check mode)"];
  if (Object.keys(hosts).length === 0) return [...lines, "  no host was checked"];
  for (const drift of getDrift(hosts, changes, interrupted)) {
    lines.push(`  ${drift.host.padEnd(width)}  ${describeDrift(drift)}`);
    for (const row of changes.filter((c) => c.host === drift.host)) {
      lines.push(`    ${row.role} (${plural(row.tasks.length, "task")})`);
      row.tasks.forEach((task) => lines.push(`      ${task}`));
    }
  }
  return lines;
}

function describeDrift(drift: HostDrift): string {
  const changed = `${plural(drift.wouldChange, "task")} would change`;
  if (drift.checked) return drift.wouldChange === 0 ? "no drift" : changed;
  const before = drift.wouldChange === 0 ? "" : ` (${changed} before it stopped)`;
  return `not checked: ${drift.reason}${before}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
