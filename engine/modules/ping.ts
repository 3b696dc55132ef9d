import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { commandError } from "../command-error.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition } from "./types.js";

/**
 * Checks that the host answers a command over its connection.
 *
 * @example
 * ping({})
 */
export function ping(args: TaskOptions = {}): Task {
  return makeTask("ping", args, callerLocation());
}

export const pingModule: ModuleDefinition<Record<string, never>, null> = {
  name: "ping",
  validate(raw, where) {
    new ArgReader("ping", raw, where, []);
    return {};
  },
  label: () => "ping",
  async facts(_args, reader, ctx) {
    const result = await reader.probe("echo pong");
    if (result.rc !== 0) throw commandError("ping", "echo pong", result, ctx.where);
    return null;
  },
  plan: () => ({ status: "ok", reason: "pong", ops: [] }),
};
