import type { ChangeRow, HealthRow } from "../events.js";

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

/**
 * The DRIFT section of a check-mode run: per host, each role whose tasks would change, with
 * their count and names, or "no drift" for a host where nothing would change.
 */
export function renderDrift(hosts: readonly string[], changes: readonly ChangeRow[]): string[] {
  const width = Math.max(0, ...hosts.map((h) => h.length));
  const lines = ["DRIFT (check mode)"];
  for (const host of hosts) {
    const rows = changes.filter((c) => c.host === host);
    if (rows.length === 0) {
      lines.push(`  ${host.padEnd(width)}  no drift`);
      continue;
    }
    const count = rows.reduce((n, r) => n + r.tasks.length, 0);
    lines.push(`  ${host.padEnd(width)}  ${plural(count, "task")} would change`);
    for (const row of rows) {
      lines.push(`    ${row.role} (${plural(row.tasks.length, "task")})`);
      row.tasks.forEach((task) => lines.push(`      ${task}`));
    }
  }
  return lines;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
