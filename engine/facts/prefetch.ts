import type { Connection } from "../connection/types.js";
import { factCacheOf, type FactRequest } from "./cache.js";

/** The parts of a compiled task the read-ahead looks at. */
interface TaskLike {
  module: { name: string };
  /** Undefined while some arguments are computed at run time: those tasks read for themselves. */
  args: unknown;
  become?: boolean;
}

/**
 * Announces the paths a play's tasks will read on a host, so the first read fetches them all
 * in one command. Only the file-like modules are known here; any other module reads for
 * itself, and a path not announced is read when its task asks (nothing depends on this but speed).
 */
export function announceFactReads(connection: Connection, tasks: readonly TaskLike[]): void {
  factCacheOf(connection).announce(tasks.flatMap(requestsOf));
}

function requestsOf(task: TaskLike): FactRequest[] {
  const args = (task.args ?? {}) as Record<string, unknown>;
  const become = task.become;
  const one = (key: string, content = false): FactRequest[] =>
    typeof args[key] === "string" ? [{ path: args[key], content, become }] : [];
  switch (task.module.name) {
    case "file":
    case "stat":
      return one("path");
    case "copy":
    case "template":
      return one("dest");
    case "lineinfile":
    case "blockinfile":
      return one("path", true);
    case "command":
      return [...one("creates"), ...one("removes")];
    default:
      return [];
  }
}
