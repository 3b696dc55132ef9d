import { dirname } from "node:path";
import type { Deferrable } from "../dsl/deferred.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import type { FileFact, FileWithContent } from "../facts/reader.js";
import { quote } from "../shell.js";
import { ArgReader } from "./args.js";
import { planContent } from "./content.js";
import { failedPlan } from "./failure.js";
import { editLine, type LineSpec } from "./line-edit.js";
import type { ModuleDefinition, Plan, PlanContext } from "./types.js";

/** Arguments of the `authorizedKey` module. */
export interface AuthorizedKeyArgs {
  /** The account whose key file is managed; it must exist. */
  user: string;
  /** One public key line, e.g. "ssh-ed25519 AAAA... alice@laptop". */
  key: string;
  state?: "present" | "absent";
  /** The key file (default: the user's ~/.ssh/authorized_keys). */
  path?: string;
}

interface Valid {
  user: string;
  key: string;
  /** Matches a line holding the same key (same type and base64 body), whatever its comment. */
  sameKey: RegExp;
  state: "present" | "absent";
  path?: string;
}

type Facts =
  | { kind: "no-user" }
  | { kind: "user"; path: string; gid: string; folder: FileFact; file: FileWithContent };

const KEY_LINE =
  /^(?:\S+\s+)?((?:ssh|ecdsa|sk-ssh|sk-ecdsa)-[\w@.-]+)\s+([A-Za-z0-9+/]+={0,3})(\s.*)?$/;

/**
 * Ensures one SSH public key in a user's authorized_keys, or its absence. A key already there
 * with another comment is replaced in place; a file without a final newline gets one before
 * the new key, so two keys never end up on one line.
 *
 * @example
 * authorizedKey({ user: "deploy", key: "ssh-ed25519 AAAAC3Nza... ops@desk" })
 */
export function authorizedKey(args: Deferrable<AuthorizedKeyArgs> & TaskOptions): Task {
  return makeTask("authorizedKey", args, callerLocation());
}

export const authorizedKeyModule: ModuleDefinition<Valid, Facts> = {
  name: "authorizedKey",
  validate(raw, where) {
    const args = new ArgReader("authorizedKey", raw, where, ["user", "key", "state", "path"]);
    const key = args.string("key").trim();
    const parts = KEY_LINE.exec(key);
    if (!parts || key.includes("\n"))
      args.fail(
        "ARG_VALUE",
        `authorizedKey: "key" must be one public key line such as "ssh-ed25519 AAAA... comment", got "${key.slice(0, 40)}"`,
      );
    const [, type = "", body = ""] = parts ?? [];
    const valid: Valid = {
      user: args.string("user"),
      key,
      sameKey: new RegExp(`(^|\\s)${escape(type)}\\s+${escape(body)}(\\s|$)`),
      state: args.oneOf("state", ["present", "absent"] as const, "present"),
    };
    const path = args.optionalString("path");
    if (path !== undefined && !path.startsWith("/"))
      args.fail("ARG_VALUE", `authorizedKey: "path" must be an absolute path, got "${path}"`);
    if (path !== undefined) valid.path = path;
    return valid;
  },
  label: (args) => `authorizedKey ${args.user} ${args.key.split(/\s+/)[2] ?? ""}`.trimEnd(),
  async facts(args, reader) {
    const passwd = await reader.probe(`getent passwd ${quote(args.user)}`);
    const [, , , gid, , home] = passwd.stdout.toString("utf8").trim().split(":");
    if (passwd.rc !== 0 || gid === undefined || !home) return { kind: "no-user" };
    const path = args.path ?? `${home.replace(/\/$/, "")}/.ssh/authorized_keys`;
    const folder = (await reader.stat([dirname(path)])).get(dirname(path)) ?? { kind: "absent" };
    const file = await reader.statWithContent(path);
    return { kind: "user", path, gid, folder, file };
  },
  plan(args, facts, ctx) {
    if (facts.kind === "no-user")
      return ctx.check
        ? {
            status: "skipped",
            reason: `check mode: user ${args.user} does not exist yet (an earlier task may create it)`,
            ops: [],
          }
        : failedPlan(`user ${args.user} does not exist on the host`, ctx);
    return planKeyFile(args, facts, ctx);
  },
};

function planKeyFile(args: Valid, facts: Extract<Facts, { kind: "user" }>, ctx: PlanContext): Plan {
  const { fact, content } = facts.file;
  if (fact.kind === "absent" && args.state === "absent")
    return { status: "ok", reason: `${facts.path} is absent`, ops: [] };
  const before = content?.toString("utf8") ?? "";
  const spec: LineSpec =
    args.state === "present"
      ? { state: "present", line: args.key, regexp: args.sameKey, anchor: { kind: "eof" } }
      : { state: "absent", regexp: args.sameKey };
  const after = Buffer.from(editLine(before, spec));
  const folder = dirname(facts.path);
  if (facts.folder.kind === "directory")
    return planContent(facts.path, after, fact, owned(args, facts), content);
  if (facts.folder.kind !== "absent")
    return failedPlan(`${folder} is a ${facts.folder.kind}, not a folder`, ctx);
  if (args.path) return failedPlan(`folder ${folder} does not exist`, ctx);
  const plan = planContent(facts.path, after, fact, owned(args, facts), content);
  plan.ops.unshift({ kind: "mkdir", path: folder, mode: 0o700, ...ids(args, facts) });
  return plan;
}

/** The key file belongs to the user, mode 0600, as sshd's StrictModes wants. */
function owned(args: Valid, facts: Extract<Facts, { kind: "user" }>) {
  return { ...ids(args, facts), mode: { kind: "octal" as const, bits: 0o600 } };
}

function ids(args: Valid, facts: Extract<Facts, { kind: "user" }>) {
  return { owner: args.user, group: facts.gid };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
