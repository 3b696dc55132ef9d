import type { Task, TaskOptions } from "../../engine/index.js";
import { callerLocation, makeTask } from "../../engine/dsl/task.js";
import { taskError } from "../../engine/errors.js";
import type { ExecResult } from "../../engine/connection/types.js";
import type { HostReader } from "../../engine/facts/reader.js";
import { ArgReader } from "../../engine/modules/args.js";
import { registerModule } from "../../engine/modules/index.js";
import type { ModuleDefinition, Plan, PlanContext } from "../../engine/modules/types.js";
import { quote, quoteArgv } from "../../engine/shell.js";

/** How the bao CLI reaches the server; the root token is read from the init file on the host. */
export interface BaoClient {
  addr: string;
  caCert: string;
  /** The root-only file `bao operator init -format=json` wrote. */
  initFile: string;
}

/** One piece of OpenBao state, converged: an auth method, a policy, or fields at a path. */
export type BaoItem =
  | { kind: "auth"; type: string }
  | { kind: "policy"; name: string; file: string }
  | {
      kind: "write";
      path: string;
      fields: Record<string, string | string[]>;
      /** Fields whose value is a file's content on the host (`key=@file`). */
      fileFields?: Record<string, string>;
    };

/** Arguments of the `baoState` module. */
export interface BaoStateArgs {
  client: BaoClient;
  item: BaoItem;
}

/**
 * Converges one piece of OpenBao state through the bao CLI on the host: it reads the current
 * value, writes only when it differs, and reports why. Check mode reads, and writes nothing.
 *
 * @example
 * baoState({ client, item: { kind: "auth", type: "jwt" } })
 */
export function baoState(args: BaoStateArgs & TaskOptions): Task {
  return makeTask("baoState", args, callerLocation());
}

type Facts = { kind: "read"; differences: string[] } | { kind: "unavailable"; why: string };

const baoStateModule: ModuleDefinition<BaoStateArgs, Facts> = {
  name: "baoState",
  validate(raw, where) {
    const args = new ArgReader("baoState", raw, where, ["client", "item"]);
    const item = args.value("item") as BaoItem | undefined;
    if (!item || !["auth", "policy", "write"].includes(item.kind))
      args.fail("ARG_VALUE", `baoState: "item" must be an auth, policy or write item`);
    return { client: args.value("client") as BaoClient, item: item as BaoItem };
  },
  label: (args) => `baoState ${describe(args.item)}`,
  async facts(args, reader) {
    const status = await reader.probe(`${env(args.client)} bao status -format=json`);
    if (status.rc !== 0)
      return { kind: "unavailable", why: `bao status exited ${status.rc} (${tail(status)})` };
    return { kind: "read", differences: await differences(args, reader) };
  },
  plan(args, facts, ctx) {
    return planItem(args, facts, ctx);
  },
};

registerModule(baoStateModule);

function planItem(args: BaoStateArgs, facts: Facts, ctx: PlanContext): Plan {
  if (facts.kind === "unavailable") {
    if (ctx.check)
      return {
        status: "changed",
        reason: `would set ${describe(args.item)} (OpenBao cannot be asked yet: ${facts.why})`,
        ops: [],
      };
    throw taskError("BAO_UNAVAILABLE", `OpenBao is not ready: ${facts.why}`, ctx.where);
  }
  if (facts.differences.length === 0)
    return { status: "ok", reason: `${describe(args.item)} is as declared`, ops: [] };
  const line = writeCommand(args.item);
  return {
    status: "changed",
    reason: facts.differences.join("; "),
    ops: [{ kind: "exec", command: `${env(args.client)} ${line}`, display: line }],
  };
}

function describe(item: BaoItem): string {
  if (item.kind === "auth") return `auth method ${item.type}/`;
  if (item.kind === "policy") return `policy ${item.name}`;
  return item.path;
}

/** Shell prefix: address, CA, and the root token taken from the init file (never printed). */
function env(client: BaoClient): string {
  const token = `tr -d ' \\n\\t\\r' < ${quote(client.initFile)} | sed -n 's/.*"root_token":"\\([^"]*\\)".*/\\1/p'`;
  return `BAO_ADDR=${quote(client.addr)} BAO_CACERT=${quote(client.caCert)} BAO_TOKEN="$(${token})"`;
}

async function differences(args: BaoStateArgs, reader: HostReader): Promise<string[]> {
  const item = args.item;
  const run = (line: string) => reader.probe(`${env(args.client)} ${line}`);
  if (item.kind === "auth") {
    const list = await run("bao auth list -format=json");
    const mounts = JSON.parse(list.stdout.toString() || "{}") as Record<string, { type?: string }>;
    return mounts[`${item.type}/`] ? [] : [`auth method ${item.type}/ is not enabled`];
  }
  if (item.kind === "policy") {
    const [current, desired] = [
      await run(`bao policy read ${quote(item.name)}`),
      await reader.probe(`cat ${quote(item.file)}`),
    ];
    if (current.rc !== 0) return [`policy ${item.name} does not exist`];
    return current.stdout.toString().trim() === desired.stdout.toString().trim()
      ? []
      : [`policy ${item.name} differs from ${item.file}`];
  }
  const read = await run(`bao read -format=json ${quote(item.path)}`);
  if (read.rc !== 0) return [`${item.path} is not set`];
  const data =
    (JSON.parse(read.stdout.toString() || "{}") as { data?: Record<string, unknown> }).data ?? {};
  const out = Object.entries(item.fields)
    .filter(([key, want]) => !sameValue(want, data[key]))
    .map(([key]) => `${item.path}: ${key} differs`);
  for (const [key, path] of Object.entries(item.fileFields ?? {})) {
    const content = (await reader.probe(`cat ${quote(path)}`)).stdout.toString();
    if (String(data[key] ?? "").trim() !== content.trim())
      out.push(`${item.path}: ${key} differs from ${path}`);
  }
  return out;
}

/** OpenBao reads back lists as arrays and durations as seconds. */
export function sameValue(want: string | string[], have: unknown): boolean {
  if (Array.isArray(want)) {
    const list = Array.isArray(have)
      ? have.map(String)
      : typeof have === "string" && have !== ""
        ? have.split(",")
        : [];
    return (
      want.length === list.length && [...want].sort().every((v, i) => v === [...list].sort()[i])
    );
  }
  if (typeof have === "number") return seconds(want) === have;
  if (Array.isArray(have)) return have.length === 1 && String(have[0]) === want;
  return String(have ?? "") === want;
}

function seconds(text: string): number | undefined {
  const match = /^(\d+)(s|m|h)?$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * ({ s: 1, m: 60, h: 3600 }[match[2] as "s" | "m" | "h"] ?? 1);
}

function writeCommand(item: BaoItem): string {
  if (item.kind === "auth") return quoteArgv(["bao", "auth", "enable", item.type]);
  if (item.kind === "policy") return quoteArgv(["bao", "policy", "write", item.name, item.file]);
  const pairs = [
    ...Object.entries(item.fields).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`),
    ...Object.entries(item.fileFields ?? {}).map(([k, path]) => `${k}=@${path}`),
  ];
  return quoteArgv(["bao", "write", item.path, ...pairs]);
}

function tail(result: ExecResult): string {
  return (
    result.stderr.toString().trim().split("\n").slice(-2).join(" ").slice(0, 200) || "no output"
  );
}
