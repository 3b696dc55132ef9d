import type { Deferrable } from "../dsl/deferred.js";
import { callerLocation, type Task, type TaskOptions } from "../dsl/task.js";
import { makeNamedTask, type NamedResourceOptions } from "./named-task.js";
import { quote, quoteArgv } from "../shell.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition, Plan } from "./types.js";

/** Arguments of the `group` module. */
export interface GroupArgs {
  /** The group's name (name the task itself with `taskName`). */
  name: string;
  state?: "present" | "absent";
  /** Create it as a system group (a gid below 1000). Only used when the group is created. */
  system?: boolean;
  gid?: number;
}

interface Valid {
  name: string;
  state: "present" | "absent";
  system: boolean;
  gid?: number;
}

/** A group as getent reports it. */
export type GroupFact = { kind: "absent" } | { kind: "group"; gid: number; members: string[] };

/**
 * Manages a local group with groupadd, groupmod and groupdel.
 *
 * @example
 * group({ name: "spire", system: true })
 */
export function group(
  args: Deferrable<GroupArgs> & NamedResourceOptions & Omit<TaskOptions, "name">,
): Task {
  return makeNamedTask("group", args, callerLocation());
}

export const groupModule: ModuleDefinition<Valid, GroupFact> = {
  name: "group",
  validate(raw, where) {
    const args = new ArgReader("group", raw, where, ["name", "state", "system", "gid"]);
    const valid: Valid = {
      name: accountName(args, "group"),
      state: args.oneOf("state", ["present", "absent"] as const, "present"),
      system: args.optionalBoolean("system") ?? false,
    };
    const gid = accountId(args, "gid", "group");
    if (gid !== undefined) valid.gid = gid;
    return valid;
  },
  label: (args) => `group ${args.name}`,
  async facts(args, reader) {
    const result = await reader.probe(`getent group ${quote(args.name)}`);
    return parseGroupLine(result.rc === 0 ? result.stdout.toString("utf8") : "");
  },
  plan(args, fact) {
    if (args.state === "absent") {
      if (fact.kind === "absent") return { status: "ok", reason: "group is absent", ops: [] };
      return changed(args.name, "group exists", ["groupdel", args.name], ["present -> absent"]);
    }
    if (fact.kind === "absent") {
      const argv = [
        "groupadd",
        ...(args.system ? ["--system"] : []),
        ...(args.gid === undefined ? [] : ["--gid", String(args.gid)]),
        args.name,
      ];
      const attrs = args.gid === undefined ? [] : [`gid ${args.gid}`];
      return changed(args.name, "group is absent", argv, ["absent -> present", ...attrs]);
    }
    if (args.gid !== undefined && args.gid !== fact.gid) {
      const argv = ["groupmod", "--gid", String(args.gid), args.name];
      return changed(args.name, `gid is ${fact.gid}`, argv, [`gid ${fact.gid} -> ${args.gid}`]);
    }
    return { status: "ok", reason: `group exists with gid ${fact.gid}`, ops: [] };
  },
};

function changed(name: string, reason: string, argv: string[], attributes: string[]): Plan {
  return {
    status: "changed",
    reason,
    ops: [{ kind: "exec", command: quoteArgv(argv) }],
    diff: [{ path: `group ${name}`, attributes }],
  };
}

/** Parses one `getent group` line (name:x:gid:member,member). */
export function parseGroupLine(line: string): GroupFact {
  const [, , gid, members = ""] = line.trim().split(":");
  if (gid === undefined || !/^\d+$/.test(gid)) return { kind: "absent" };
  return { kind: "group", gid: Number(gid), members: members.split(",").filter(Boolean) };
}

/** A user or group name as shadow-utils accepts it. */
export function accountName(args: ArgReader, module: string): string {
  const name = args.string("name");
  if (!/^[a-z_][a-z0-9_.-]{0,31}\$?$/.test(name))
    args.fail(
      "ARG_VALUE",
      `${module}: "name" must be a lower-case account name (letters, digits, _ . -, at most 32), got "${name}"`,
    );
  return name;
}

/** A numeric uid or gid. */
export function accountId(args: ArgReader, key: string, module: string): number | undefined {
  const id = args.optionalNumber(key);
  if (id !== undefined && (!Number.isInteger(id) || id < 0 || id > 2 ** 31 - 2))
    args.fail("ARG_VALUE", `${module}: "${key}" must be a whole number from 0, got ${id}`);
  return id;
}
