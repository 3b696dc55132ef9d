import { Type, type Static, type Task, type TaskOptions } from "../../engine/index.js";
import { callerLocation, makeTask } from "../../engine/dsl/task.js";
import { taskError } from "../../engine/errors.js";
import { ArgReader } from "../../engine/modules/args.js";
import { registerModule } from "../../engine/modules/index.js";
import type { ModuleDefinition, Op, Plan } from "../../engine/modules/types.js";
import { quoteArgv } from "../../engine/shell.js";

/** One registration entry, declared as data. */
export const Entry = Type.Object(
  {
    spiffeId: Type.String({ pattern: "^spiffe://" }),
    /** The parent (an agent or node-alias ID). Omit for a node alias (`node: true`). */
    parentId: Type.Optional(Type.String({ pattern: "^spiffe://" })),
    selectors: Type.Array(Type.String({ pattern: "^[a-z_]+:.+" }), { minItems: 1 }),
    /** A node-alias entry: its parent is the server and it groups agents by selector. */
    node: Type.Optional(Type.Boolean()),
    x509SvidTtl: Type.Optional(Type.Integer({ minimum: 0 })),
    jwtSvidTtl: Type.Optional(Type.Integer({ minimum: 0 })),
    dns: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);
export type Entry = Static<typeof Entry>;

/** Arguments of the `spireEntries` module. */
export interface SpireEntriesArgs {
  socketPath: string;
  trustDomain: string;
  entries: Entry[];
}

/** An entry as the server reports it, reduced to what a declaration can say. */
interface Current {
  id: string;
  spiffeId: string;
  parentId: string;
  selectors: string[];
  x509SvidTtl: number;
  jwtSvidTtl: number;
  dns: string[];
}

type Facts = { kind: "listed"; entries: Current[] } | { kind: "unreachable"; why: string };

/**
 * Converges registration entries: creates the missing ones, updates those whose selectors,
 * TTLs or DNS names differ, and leaves equal ones (and undeclared ones) alone. An entry is
 * identified by its SPIFFE ID and parent. Check mode lists what a run would create or update.
 *
 * @example
 * spireEntries({ socketPath: "/run/spire/server/api.sock", trustDomain: "funlab.casa", entries: [{ spiffeId: "spiffe://funlab.casa/workload/openbao", parentId: "spiffe://funlab.casa/host/spire", selectors: ["unix:user:openbao"] }] })
 */
export function spireEntries(args: SpireEntriesArgs & TaskOptions): Task {
  return makeTask("spireEntries", args, callerLocation());
}

interface Valid {
  socketPath: string;
  entries: (Entry & { parentId: string })[];
}

export const spireEntriesModule: ModuleDefinition<Valid, Facts> = {
  name: "spireEntries",
  validate(raw, where) {
    const args = new ArgReader("spireEntries", raw, where, [
      "socketPath",
      "trustDomain",
      "entries",
    ]);
    const socketPath = args.string("socketPath");
    const td = args.string("trustDomain");
    const list = args.value("entries");
    if (!Array.isArray(list)) args.fail("ARG_TYPE", `spireEntries: "entries" must be an array`);
    const entries = (list as Entry[]).map((e) => {
      if (!e.node && !e.parentId)
        args.fail(
          "ARG_VALUE",
          `spireEntries: entry ${e.spiffeId} needs "parentId" (or "node: true")`,
        );
      return { ...e, parentId: e.node ? `spiffe://${td}/spire/server` : (e.parentId as string) };
    });
    return { socketPath, entries };
  },
  label: (args) => `spireEntries ${args.entries.length} entries`,
  async facts(args, reader) {
    const line = quoteArgv([
      "spire-server",
      "entry",
      "show",
      "-socketPath",
      args.socketPath,
      "-output",
      "json",
    ]);
    const result = await reader.probe(line);
    if (result.rc !== 0)
      return {
        kind: "unreachable",
        why: `${line} exited ${result.rc}: ${result.stderr.toString().trim().slice(-300)}`,
      };
    return { kind: "listed", entries: parseEntries(result.stdout.toString("utf8")) };
  },
  plan(args, facts, ctx): Plan {
    if (facts.kind === "unreachable") {
      if (ctx.check)
        return {
          status: "changed",
          reason: `would converge ${args.entries.length} entries (the server cannot be asked yet: ${facts.why})`,
          ops: [],
        };
      throw taskError("SPIRE_ENTRIES", `cannot list registration entries: ${facts.why}`, ctx.where);
    }
    const steps = args.entries.flatMap((entry) => planEntry(args.socketPath, entry, facts.entries));
    if (steps.length === 0)
      return { status: "ok", reason: `${args.entries.length} entries match`, ops: [] };
    return {
      status: "changed",
      reason: steps.map((s) => s.why).join("; "),
      ops: steps.map((s) => s.op),
    };
  },
};

registerModule(spireEntriesModule);

function planEntry(socket: string, want: Entry & { parentId: string }, have: Current[]) {
  const found = have.find((c) => c.spiffeId === want.spiffeId && c.parentId === want.parentId);
  if (found && equal(want, found)) return [];
  const verb = found ? "update" : "create";
  const argv = [
    "spire-server",
    "entry",
    verb,
    "-socketPath",
    socket,
    ...(found ? ["-entryID", found.id] : []),
    ...(want.node && !found ? ["-node"] : ["-parentID", want.parentId]),
    "-spiffeID",
    want.spiffeId,
    ...want.selectors.flatMap((s) => ["-selector", s]),
    ...(want.x509SvidTtl === undefined ? [] : ["-x509SVIDTTL", String(want.x509SvidTtl)]),
    ...(want.jwtSvidTtl === undefined ? [] : ["-jwtSVIDTTL", String(want.jwtSvidTtl)]),
    ...(want.dns ?? []).flatMap((d) => ["-dns", d]),
  ];
  const op: Op = { kind: "exec", command: quoteArgv(argv) };
  return [
    {
      op,
      why: `${verb} ${want.spiffeId}${found ? ` (${differences(want, found).join(", ")})` : ""}`,
    },
  ];
}

function equal(want: Entry, have: Current): boolean {
  return differences(want, have).length === 0;
}

function differences(want: Entry, have: Current): string[] {
  const out: string[] = [];
  if (!sameSet(want.selectors, have.selectors))
    out.push(`selectors ${have.selectors.join(",")} -> ${want.selectors.join(",")}`);
  if (want.x509SvidTtl !== undefined && want.x509SvidTtl !== have.x509SvidTtl)
    out.push(`x509SVIDTTL ${have.x509SvidTtl} -> ${want.x509SvidTtl}`);
  if (want.jwtSvidTtl !== undefined && want.jwtSvidTtl !== have.jwtSvidTtl)
    out.push(`jwtSVIDTTL ${have.jwtSvidTtl} -> ${want.jwtSvidTtl}`);
  if (!sameSet(want.dns ?? [], have.dns))
    out.push(`dns ${have.dns.join(",")} -> ${(want.dns ?? []).join(",")}`);
  return out;
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().every((v, i) => v === [...b].sort()[i]);
}

interface RawId {
  trust_domain?: string;
  path?: string;
}

/** `entry show -output json`: IDs are objects {trust_domain, path}; selectors {type, value}. */
export function parseEntries(text: string): Current[] {
  const doc = JSON.parse(text || "{}") as { entries?: Record<string, unknown>[] | null };
  return (doc.entries ?? []).map((e) => ({
    id: String(e.id),
    spiffeId: idString(e.spiffe_id),
    parentId: idString(e.parent_id),
    selectors: ((e.selectors as { type: string; value: string }[] | undefined) ?? []).map(
      (s) => `${s.type}:${s.value}`,
    ),
    x509SvidTtl: Number(e.x509_svid_ttl ?? 0),
    jwtSvidTtl: Number(e.jwt_svid_ttl ?? 0),
    dns: (e.dns_names as string[] | undefined) ?? [],
  }));
}

function idString(id: unknown): string {
  if (typeof id === "string") return id;
  const raw = (id ?? {}) as RawId;
  return `spiffe://${raw.trust_domain ?? ""}${raw.path ?? ""}`;
}
