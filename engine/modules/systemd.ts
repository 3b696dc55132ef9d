import type { Deferrable } from "../dsl/deferred.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { commandError } from "../command-error.js";
import { quote } from "../shell.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition, Op } from "./types.js";

/** Arguments of the `systemd` module. */
export interface SystemdArgs {
  unit: string;
  state?: "started" | "stopped" | "restarted" | "reloaded";
  enabled?: boolean;
  /**
   * Reload systemd's view of unit files first, when they changed on disk: the unit file, or its
   * drop-ins (a drop-in added or removed since the last reload counts too).
   */
  daemonReload?: boolean;
}

interface Valid {
  unit: string;
  state?: NonNullable<SystemdArgs["state"]>;
  enabled?: boolean;
  daemonReload: boolean;
}

/** What systemd says about a unit. */
export interface UnitFacts {
  loadState: string;
  activeState: string;
  unitFileState: string;
  needDaemonReload: boolean;
}

/**
 * Manages a systemd unit: running state, enablement, daemon-reload.
 * A unit that fails to start reports its last journal lines.
 *
 * @example
 * systemd({ unit: "spire-agent", state: "started", enabled: true, daemonReload: true })
 */
export function systemd(args: Deferrable<SystemdArgs> & TaskOptions): Task {
  return makeTask("systemd", args, callerLocation());
}

export const systemdModule: ModuleDefinition<Valid, UnitFacts> = {
  name: "systemd",
  validate(raw, where) {
    const args = new ArgReader("systemd", raw, where, ["unit", "state", "enabled", "daemonReload"]);
    const valid: Valid = {
      unit: args.string("unit"),
      daemonReload: args.optionalBoolean("daemonReload") ?? false,
    };
    if (args.has("state"))
      valid.state = args.oneOf("state", ["started", "stopped", "restarted", "reloaded"] as const);
    const enabled = args.optionalBoolean("enabled");
    if (enabled !== undefined) valid.enabled = enabled;
    if (!valid.state && enabled === undefined && !valid.daemonReload) {
      args.fail(
        "ARG_MISSING",
        `systemd: give at least one of "state", "enabled" and "daemonReload"`,
      );
    }
    return valid;
  },
  label: (args) => `systemd ${args.unit}${args.state ? ` ${args.state}` : ""}`,
  async facts(args, reader, ctx) {
    const unit = quote(args.unit);
    const dirs = DROP_IN_ROOTS.map((root) => `${root}/${quote(unitFileName(args.unit))}.d/*.conf`);
    const line =
      `systemctl show -p LoadState -p ActiveState -p UnitFileState -p NeedDaemonReload -p DropInPaths -- ${unit} && ` +
      `printf 'DropInsOnDisk=' && for f in ${dirs.join(" ")}; do if [ -e "$f" ]; then printf '%s ' "$f"; fi; done && echo`;
    const result = await reader.probe(line);
    if (result.rc !== 0) throw commandError("reading unit state", line, result, ctx.where);
    return parseShow(result.stdout.toString("utf8"), args.unit);
  },
  plan(args, facts) {
    const steps: { op: Op; why: string }[] = [];
    const reload = args.daemonReload && (facts.needDaemonReload || facts.loadState === "not-found");
    if (reload) steps.push({ op: exec("daemon-reload", ""), why: "unit files changed on disk" });
    const enable = planEnable(args, facts);
    if (enable) steps.push(enable);
    const state = planState(args, facts);
    if (state) steps.push(state);
    if (steps.length === 0) return { status: "ok", reason: describe(facts), ops: [] };
    return {
      status: "changed",
      reason: steps.map((s) => s.why).join("; "),
      ops: steps.map((s) => s.op),
    };
  },
};

/**
 * Folders whose `<unit>.d/*.conf` drop-ins are compared with the ones systemd loaded: systemd 252
 * says NeedDaemonReload=no for a drop-in folder made after the last reload.
 */
const DROP_IN_ROOTS = ["/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system"];

const UNIT_TYPES = /\.(service|socket|device|mount|automount|swap|target|path|timer|slice|scope)$/;

/** The unit's file name: systemctl takes "spire-agent" for "spire-agent.service". */
function unitFileName(unit: string): string {
  return UNIT_TYPES.test(unit) ? unit : `${unit}.service`;
}

/** `systemctl show` output plus the drop-ins on disk, as facts. */
export function parseShow(text: string, unit: string): UnitFacts {
  const props = new Map(
    text.split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  const words = (key: string) => new Set((props.get(key) ?? "").split(/\s+/).filter(Boolean));
  const own = DROP_IN_ROOTS.map((root) => `${root}/${unitFileName(unit)}.d/`);
  const loaded = [...words("DropInPaths")].filter((p) => own.some((dir) => p.startsWith(dir)));
  const onDisk = words("DropInsOnDisk");
  const dropInsMoved = loaded.length !== onDisk.size || loaded.some((p) => !onDisk.has(p));
  return {
    loadState: props.get("LoadState") ?? "",
    activeState: props.get("ActiveState") ?? "",
    unitFileState: props.get("UnitFileState") ?? "",
    needDaemonReload: props.get("NeedDaemonReload") === "yes" || dropInsMoved,
  };
}

function planEnable(args: Valid, facts: UnitFacts): { op: Op; why: string } | undefined {
  if (args.enabled === undefined) return undefined;
  const isEnabled = ["enabled", "enabled-runtime", "alias"].includes(facts.unitFileState);
  const cannotChange = ["static", "indirect", "generated", "transient"].includes(
    facts.unitFileState,
  );
  if (cannotChange || args.enabled === isEnabled) return undefined;
  const verb = args.enabled ? "enable" : "disable";
  return {
    op: exec(verb, args.unit),
    why: `unit is ${facts.unitFileState || "unknown"}, will ${verb}`,
  };
}

function planState(args: Valid, facts: UnitFacts): { op: Op; why: string } | undefined {
  const active = facts.activeState === "active" || facts.activeState === "reloading";
  switch (args.state) {
    case "started":
      return active
        ? undefined
        : { op: exec("start", args.unit), why: `unit is ${facts.activeState}, will start` };
    case "stopped":
      return active ? { op: exec("stop", args.unit), why: "unit is active, will stop" } : undefined;
    case "restarted":
      return { op: exec("restart", args.unit), why: "restart requested" };
    case "reloaded":
      return {
        op: exec(active ? "reload" : "start", args.unit),
        why: active ? "reload requested" : `unit is ${facts.activeState}, will start`,
      };
    default:
      return undefined;
  }
}

/** Verbs after which the unit must be running; a unit that dies at once is a failed start. */
const STARTING = new Set(["start", "restart", "reload"]);

/**
 * A systemctl call that, when it fails, adds the unit's last journal lines to stderr. After a
 * start, the unit must stay active for about a second: `systemctl start` of a Type=simple
 * service returns before the program has read its configuration, so a service that exits at
 * once on a bad config would otherwise be reported as started.
 * Known limit: a unit that fails later than that second is reported as started.
 */
function exec(verb: string, unit: string): Op {
  const target = unit ? ` -- ${quote(unit)}` : "";
  const journal = unit
    ? `echo "--- last journal lines of ${unit} ---" >&2; journalctl -u ${quote(unit)} -n 10 --no-pager >&2`
    : "";
  const lines = [
    `systemctl ${verb}${target} || { rc=$?${journal ? `; ${journal}` : ""}; exit $rc; }`,
  ];
  if (STARTING.has(verb) && unit) {
    lines.push(
      `for i in 1 2 3 4; do sleep 0.25; systemctl is-active --quiet${target} && continue`,
      `echo "${unit} did not stay running after ${verb}: it is $(systemctl is-active${target})" >&2; ${journal}; exit 3; done`,
    );
  }
  return { kind: "exec", command: lines.join("\n"), display: `systemctl ${verb}${target}` };
}

function describe(facts: UnitFacts): string {
  return `unit is ${facts.activeState}, ${facts.unitFileState || "no unit file"}`;
}
