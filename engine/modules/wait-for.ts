import type { Deferrable } from "../dsl/deferred.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { quote } from "../shell.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition } from "./types.js";

/** Arguments of the `waitFor` module: a TCP port or a path. */
export interface WaitForArgs {
  port?: number;
  /** Address to probe for `port`, as seen from the host (default 127.0.0.1). */
  host?: string;
  path?: string;
  /** started/present: wait until it answers or exists; stopped/absent: until it does not. */
  state?: "started" | "stopped" | "present" | "absent";
  /** Seconds before giving up (default 30). */
  timeout?: number;
}

interface Valid {
  check: string;
  what: string;
  timeout: number;
}

/**
 * Waits on the host until a TCP port answers (or stops answering) or a path appears (or goes).
 * In check mode it looks once and does not wait.
 *
 * @example
 * waitFor({ path: "/run/spire/agent.sock", timeout: 30 })
 */
export function waitFor(args: Deferrable<WaitForArgs> & TaskOptions): Task {
  return makeTask("waitFor", args, callerLocation());
}

export const waitForModule: ModuleDefinition<Valid, { met: boolean; seconds: number }> = {
  name: "waitFor",
  validate(raw, where) {
    const args = new ArgReader("waitFor", raw, where, ["port", "host", "path", "state", "timeout"]);
    if (args.has("port") === args.has("path"))
      args.fail("ARG_CONFLICT", `waitFor: give exactly one of "port" and "path"`);
    const timeout = args.optionalNumber("timeout") ?? 30;
    if (args.has("port")) {
      const port = args.optionalNumber("port") as number;
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        args.fail("ARG_VALUE", `waitFor: "port" must be 1-65535, got ${port}`);
      const host = args.optionalString("host") ?? "127.0.0.1";
      const state = args.oneOf("state", ["started", "stopped"] as const, "started");
      const probe = `bash -c ${quote(`exec 3<>/dev/tcp/${host}/${port}`)} 2>/dev/null`;
      return {
        check: state === "started" ? probe : `! ${probe}`,
        what: `port ${host}:${port} ${state}`,
        timeout,
      };
    }
    const path = args.string("path");
    const state = args.oneOf("state", ["present", "absent"] as const, "present");
    return {
      check: `[ ${state === "present" ? "" : "! "}-e ${quote(path)} ]`,
      what: `${path} ${state}`,
      timeout,
    };
  },
  label: (args) => `waitFor ${args.what}`,
  async facts(args, reader, ctx) {
    const timeout = ctx.check ? 0 : args.timeout;
    const script = `s=$(date +%s); while :; do if ${args.check}; then echo $(( $(date +%s) - s )); exit 0; fi; [ $(( $(date +%s) - s )) -ge ${timeout} ] && exit 1; sleep 0.25; done`;
    const result = await reader.probe(script);
    return { met: result.rc === 0, seconds: Number(result.stdout.toString().trim()) || 0 };
  },
  plan(args, facts, ctx) {
    if (facts.met)
      return { status: "ok", reason: `${args.what} after ${facts.seconds} s`, ops: [] };
    if (ctx.check)
      return {
        status: "skipped",
        reason: `check mode: ${args.what} not yet true, a real run would wait up to ${args.timeout} s`,
        ops: [],
      };
    return {
      status: "failed",
      reason: `timed out after ${args.timeout} s waiting for ${args.what}`,
      ops: [],
    };
  },
};
