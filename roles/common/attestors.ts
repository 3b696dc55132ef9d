import { assert, command, deferred, type Task, type TaskContext } from "../../engine/index.js";
import { quote } from "../../engine/shell.js";
import { registeredStdout } from "./gates.js";

/** The NodeAttestor blocks a SPIRE config on the host declares, read before anything is written. */
export type ConfAttestors = { kind: "absent" } | { kind: "present"; attestors: string[] };

/** What the guard compares: the config on the host and what the inventory asks for. */
export interface AttestorCheck {
  /** The config file on the host. */
  path: string;
  /** The result name the probe registers. */
  register: string;
  /**
   * Undefined when the inventory's attestors may be written over what the host has; otherwise
   * why not and which inventory variable to set (the host name and file are added).
   */
  conflict: (found: string[]) => string | undefined;
}

const ABSENT = "(no such file)";

/**
 * A read-only probe of the host's config and an assertion that fails the host, before any task
 * writes, when the inventory would move its attestation backwards (or around sprint 3). It runs
 * in check mode too, so a check run reports the same failure.
 */
export function attestorGuard(role: string, host: string, check: AttestorCheck): Task[] {
  const phaseConflict = (ctx: TaskContext) => {
    const found = confAttestors(ctx, check.register);
    const why = found.kind === "present" ? check.conflict(found.attestors) : undefined;
    return why === undefined
      ? undefined
      : `${host}: ${check.path} ${why}; stopped before writing anything`;
  };
  return [
    command({
      name: `${role}: the node attestors ${check.path} declares now`,
      shell: attestorProbe(check.path),
      register: check.register,
      checkMode: false,
      changedWhen: () => false,
      tags: ["always"],
      guard: true,
    }),
    assert({
      name: `${role}: the inventory keeps the attestation phase of ${check.path}`,
      that: (ctx) => !phaseConflict(ctx),
      msg: deferred((ctx) => phaseConflict(ctx) ?? "the inventory keeps the attestation phase"),
      tags: ["always"],
      guard: true,
    }),
  ];
}

/** Prints each NodeAttestor name of a SPIRE config, one a line, or a marker without the file. */
function attestorProbe(path: string): string {
  const names = `sed -n 's/^[[:space:]]*NodeAttestor[[:space:]]*"\\([A-Za-z0-9_]*\\)".*/\\1/p'`;
  return `if [ -e ${quote(path)} ]; then ${names} ${quote(path)}; else echo ${quote(ABSENT)}; fi`;
}

/** The attestors the probe found; a probe that did not run counts as no file. */
function confAttestors(ctx: TaskContext, register: string): ConfAttestors {
  const out = registeredStdout(ctx, register);
  if (out === undefined || out.trim() === ABSENT) return { kind: "absent" };
  return { kind: "present", attestors: out.split("\n").filter((l) => l !== "") };
}

/** `NodeAttestor "a"` and `NodeAttestor "b"`, or `no NodeAttestor`, for messages. */
export function describeAttestors(attestors: string[]): string {
  if (attestors.length === 0) return "no NodeAttestor";
  return attestors.map((a) => `NodeAttestor "${a}"`).join(" and ");
}
