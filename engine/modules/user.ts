import type { Deferrable } from "../dsl/deferred.js";
import { callerLocation, type Task, type TaskOptions } from "../dsl/task.js";
import { makeNamedTask, type NamedResourceOptions } from "./named-task.js";
import { quote, quoteArgv } from "../shell.js";
import { ArgReader } from "./args.js";
import { accountId, accountName } from "./group.js";
import type { ModuleDefinition, Op, Plan } from "./types.js";

/** Arguments of the `user` module. */
export interface UserArgs {
  /** The user's name (name the task itself with `taskName`). */
  name: string;
  state?: "present" | "absent";
  /** Create it as a system account (uid below 1000). Only used when the user is created. */
  system?: boolean;
  uid?: number;
  /** Primary group, by name or gid; it must exist. Default: a group named after the user. */
  group?: string;
  /** Supplementary groups; the user ends up in exactly these unless `append` is true. */
  groups?: string[];
  /** Only add the user to `groups`, leaving other memberships alone. */
  append?: boolean;
  home?: string;
  shell?: string;
  /** The GECOS comment (full name). */
  comment?: string;
  /** Create the home folder when the user is created (default true). */
  createHome?: boolean;
  /** With state "absent": also remove the home folder and mail spool. */
  removeHome?: boolean;
}

interface Valid {
  name: string;
  state: "present" | "absent";
  system: boolean;
  uid?: number;
  group?: string;
  groups?: string[];
  append: boolean;
  home?: string;
  shell?: string;
  comment?: string;
  createHome: boolean;
  removeHome: boolean;
}

/** A user account as getent reports it. */
export type UserFact =
  | { kind: "absent" }
  | {
      kind: "user";
      uid: number;
      gid: number;
      /** Name of the primary group, or its gid when it has no group entry. */
      group: string;
      groups: string[];
      home: string;
      shell: string;
      comment: string;
    };

/**
 * Manages a local user account with useradd, usermod and userdel.
 *
 * @example
 * user({ name: "spire", system: true, home: "/var/lib/spire", shell: "/usr/sbin/nologin" })
 */
export function user(
  args: Deferrable<UserArgs> & NamedResourceOptions & Omit<TaskOptions, "name">,
): Task {
  return makeNamedTask("user", args, callerLocation());
}

export const userModule: ModuleDefinition<Valid, UserFact> = {
  name: "user",
  validate(raw, where) {
    const args = new ArgReader("user", raw, where, [
      "name",
      "state",
      "system",
      "uid",
      "group",
      "groups",
      "append",
      "home",
      "shell",
      "comment",
      "createHome",
      "removeHome",
    ]);
    const valid: Valid = {
      name: accountName(args, "user"),
      state: args.oneOf("state", ["present", "absent"] as const, "present"),
      system: args.optionalBoolean("system") ?? false,
      append: args.optionalBoolean("append") ?? false,
      createHome: args.optionalBoolean("createHome") ?? true,
      removeHome: args.optionalBoolean("removeHome") ?? false,
    };
    const uid = accountId(args, "uid", "user");
    if (uid !== undefined) valid.uid = uid;
    const groups = args.value("groups");
    if (Array.isArray(groups) && groups.length === 0) valid.groups = [];
    else if (groups !== undefined) valid.groups = args.stringList("groups");
    for (const key of ["group", "home", "shell"] as const) {
      const value = args.optionalString(key);
      if (value !== undefined) valid[key] = value;
    }
    for (const key of ["home", "shell"] as const) {
      if (valid[key] !== undefined && !valid[key].startsWith("/"))
        args.fail("ARG_VALUE", `user: "${key}" must be an absolute path, got "${valid[key]}"`);
    }
    if (args.has("comment")) valid.comment = args.text("comment");
    if (valid.comment?.includes(":") || valid.comment?.includes("\n"))
      args.fail("ARG_VALUE", `user: "comment" cannot hold ":" or a newline`);
    return valid;
  },
  label: (args) => `user ${args.name}`,
  async facts(args, reader) {
    const result = await reader.probe(userScript(args.name));
    return parseUserFacts(result.rc === 0 ? result.stdout.toString("utf8") : "");
  },
  plan(args, fact) {
    if (args.state === "absent") {
      if (fact.kind === "absent") return { status: "ok", reason: "user is absent", ops: [] };
      const argv = ["userdel", ...(args.removeHome ? ["--remove"] : []), args.name];
      return changed(args.name, "user exists", [exec(argv)], ["present -> absent"]);
    }
    if (fact.kind === "absent") return planCreate(args);
    return planModify(args, fact);
  },
};

// Prints the passwd entry, the primary group's name and the supplementary groups.
function userScript(name: string): string {
  return [
    `u=${quote(name)}`,
    `p=$(getent passwd "$u") || exit 2`,
    `echo "$p"`,
    `g=$(echo "$p" | cut -d: -f4)`,
    `echo "$(getent group "$g" | cut -d: -f1)"`,
    `getent group | awk -F: -v u="$u" '{ n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) print $1 }' | tr '\\n' ' '`,
  ].join("\n");
}

/** Parses the three lines of the facts script; empty output means no such user. */
export function parseUserFacts(text: string): UserFact {
  const [passwd = "", primary = "", groups = ""] = text.split("\n");
  const [, , uid, gid, comment = "", home = "", shell = ""] = passwd.split(":");
  if (uid === undefined || gid === undefined) return { kind: "absent" };
  return {
    kind: "user",
    uid: Number(uid),
    gid: Number(gid),
    group: primary.trim() || gid,
    groups: groups.trim().split(" ").filter(Boolean).sort(),
    home,
    shell,
    comment,
  };
}

function planCreate(args: Valid): Plan {
  const argv = ["useradd"];
  const attributes = ["absent -> present"];
  const add = (flag: string, value: string | undefined, label: string) => {
    if (value === undefined) return;
    argv.push(flag, value);
    attributes.push(`${label} ${value}`);
  };
  if (args.system) argv.push("--system");
  add("--uid", args.uid === undefined ? undefined : String(args.uid), "uid");
  add("--gid", args.group, "group");
  add(
    "--groups",
    args.groups && args.groups.length > 0 ? args.groups.join(",") : undefined,
    "groups",
  );
  add("--home-dir", args.home, "home");
  add("--shell", args.shell, "shell");
  add("--comment", args.comment, "comment");
  argv.push(args.createHome ? "--create-home" : "--no-create-home", args.name);
  return changed(args.name, "user is absent", [exec(argv)], attributes);
}

function planModify(args: Valid, fact: Extract<UserFact, { kind: "user" }>): Plan {
  const argv = ["usermod"];
  const attributes: string[] = [];
  const set = (flag: string, label: string, have: string, want: string | undefined) => {
    if (want === undefined || want === have) return;
    argv.push(flag, want);
    attributes.push(`${label} ${have || '""'} -> ${want || '""'}`);
  };
  set("--uid", "uid", String(fact.uid), args.uid === undefined ? undefined : String(args.uid));
  if (args.group !== undefined && args.group !== fact.group && args.group !== String(fact.gid))
    set("--gid", "group", fact.group, args.group);
  const groups = wantedGroups(args, fact.groups);
  if (groups !== undefined) {
    argv.push("--groups", groups.join(","));
    attributes.push(`groups ${fact.groups.join(",") || '""'} -> ${groups.join(",") || '""'}`);
  }
  set("--home", "home", fact.home, args.home);
  set("--shell", "shell", fact.shell, args.shell);
  set("--comment", "comment", fact.comment, args.comment);
  if (attributes.length === 0)
    return { status: "ok", reason: `user exists with uid ${fact.uid}, as wanted`, ops: [] };
  argv.push(args.name);
  return changed(args.name, attributes.join(", "), [exec(argv)], attributes);
}

/** The supplementary groups to set, or undefined when the current ones already fit. */
function wantedGroups(args: Valid, have: string[]): string[] | undefined {
  if (args.groups === undefined) return undefined;
  const want = args.append ? [...new Set([...have, ...args.groups])] : [...new Set(args.groups)];
  want.sort();
  return want.join(",") === have.join(",") ? undefined : want;
}

function exec(argv: string[]): Op {
  return { kind: "exec", command: quoteArgv(argv) };
}

function changed(name: string, reason: string, ops: Op[], attributes: string[]): Plan {
  return { status: "changed", reason, ops, diff: [{ path: `user ${name}`, attributes }] };
}
