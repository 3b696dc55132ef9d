import type { Deferrable } from "../dsl/deferred.js";
import {
  callerLocation,
  makeTask,
  type Task,
  type TaskOptions,
  type TaskResult,
} from "../dsl/task.js";
import type { FileFact } from "../facts/reader.js";
import { formatMode } from "../mode.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition } from "./types.js";

/** Arguments of the `stat` module. */
export interface StatArgs {
  path: string;
}

/** What `stat` registers under `result.stat`. */
export interface StatResult {
  exists: boolean;
  type?: "file" | "directory" | "link" | "other";
  mode?: string;
  owner?: string;
  group?: string;
  size?: number;
  sha256?: string;
  target?: string;
}

/** What a `stat` task registers: `ctx.result(task).stat` is typed. */
export interface StatRegistered extends TaskResult {
  stat: StatResult;
}

/**
 * Reads facts about a path and registers them; never changes anything.
 *
 * @example
 * const svid = stat({ path: "/var/lib/spire/agent/agent_svid.der" });
 * command({ argv: ["spire-agent", "run"], when: (ctx) => ctx.result(svid)?.stat.exists === false });
 */
export function stat(
  args: Deferrable<StatArgs> & TaskOptions<StatRegistered>,
): Task<StatRegistered> {
  return makeTask<StatRegistered>("stat", args, callerLocation());
}

export const statModule: ModuleDefinition<{ path: string }, FileFact> = {
  name: "stat",
  validate(raw, where) {
    return { path: new ArgReader("stat", raw, where, ["path"]).string("path") };
  },
  label: (args) => `stat ${args.path}`,
  async facts(args, reader) {
    return (await reader.stat([args.path])).get(args.path) ?? { kind: "absent" };
  },
  plan(args, fact) {
    const stat = toStatResult(fact);
    return {
      status: "ok",
      reason: stat.exists ? `${stat.type}, mode ${stat.mode}` : "absent",
      ops: [],
      result: { stat },
    };
  },
};

export function toStatResult(fact: FileFact): StatResult {
  if (fact.kind === "absent") return { exists: false };
  const base: StatResult = {
    exists: true,
    type: fact.kind,
    mode: formatMode(fact.mode),
    owner: fact.owner,
    group: fact.group,
  };
  if (fact.kind === "file")
    return { ...base, size: fact.size, ...(fact.sha256 ? { sha256: fact.sha256 } : {}) };
  if (fact.kind === "link") return { ...base, target: fact.target };
  return base;
}
