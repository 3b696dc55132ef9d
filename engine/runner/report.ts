import type { ChangeRow, HealthRow, OmensEvent } from "../events.js";
import type { Entry } from "./compile.js";

/**
 * Collects, from the event stream, what the recap reports beside the counts: every probe's
 * health and, per host and role, the tasks that changed. Listening to events (rather than
 * being told by the runner) means the recap says exactly what the renderers were shown.
 */
export class RunReport {
  private readonly rows: HealthRow[] = [];
  private readonly changed = new Map<string, ChangeRow>();

  /** Takes note of one event; events that say nothing about health or changes are ignored. */
  observe(event: OmensEvent): void {
    if (event.kind === "health") this.rows.push(healthRow(event));
    if (event.kind !== "task-result" || event.status !== "changed") return;
    // A loop is counted once, by its own result; handlers follow changes, they are not drift.
    if (event.item !== undefined || event.handler) return;
    const role = event.role ?? `play: ${event.play}`;
    const key = `${event.host}\u0000${role}`;
    const row = this.changed.get(key) ?? { host: event.host, role, tasks: [] };
    if (!row.tasks.includes(event.task)) row.tasks.push(event.task);
    this.changed.set(key, row);
  }

  /** Health rows, hosts in the given order (hosts run in parallel report in any order). */
  health(hosts: readonly string[]): HealthRow[] {
    return byHost(this.rows, hosts);
  }

  /** Change rows, hosts in the given order, roles in the order they first changed. */
  changes(hosts: readonly string[]): ChangeRow[] {
    return byHost([...this.changed.values()], hosts);
  }
}

function healthRow(event: Extract<OmensEvent, { kind: "health" }>): HealthRow {
  const { host, component, check, healthy, detail } = event;
  return { host, component, check, healthy, detail };
}

// A stable sort: rows of one host keep the order they came in.
function byHost<T extends { host: string }>(rows: T[], hosts: readonly string[]): T[] {
  const rank = (host: string) => {
    const at = hosts.indexOf(host);
    return at < 0 ? hosts.length : at;
  };
  return [...rows].sort((a, b) => rank(a.host) - rank(b.host));
}

/**
 * Health events for the probes among `entries` (a host's remaining program) that will not run
 * because the host is unreachable: each is an unhealthy row with the detail "unreachable".
 */
// Known limit: a probe in a loop whose items come from a function is not listed here.
export function unreachableProbes(
  entries: readonly Entry[],
  host: string,
  play: string,
): Extract<OmensEvent, { kind: "health" }>[] {
  const tasks = entries.flatMap((e) => (e.kind === "task" ? [e.task] : []));
  return tasks
    .flatMap((task) => (task.loop ? (task.loop.fixed ?? []).map((i) => i.task) : [task]))
    .filter((task) => task.module.name === "probe" && task.args !== undefined)
    .map((task) => {
      const { component, check } = task.args as { component: string; check: string };
      const row = { host, component, check, healthy: false, detail: "unreachable" };
      return { kind: "health", ...row, play, task: task.name, durationMs: 0 };
    });
}
