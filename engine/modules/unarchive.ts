import type { Deferrable } from "../dsl/deferred.js";
import { outputTail } from "../command-error.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import type { FileFact, HostReader } from "../facts/reader.js";
import { quote } from "../shell.js";
import { ArgReader } from "./args.js";
import { failedPlan } from "./failure.js";
import type { ModuleDefinition, Op, Plan } from "./types.js";

/** Arguments of the `unarchive` module. */
export interface UnarchiveArgs {
  /** A .tar.gz file on the host (fetch it first with getUrl or copy). */
  src: string;
  /** An existing folder on the host to extract into. */
  dest: string;
  /** Skip when this path exists; without it, the archive is compared with dest each run. */
  creates?: string;
  /** Owner of every extracted entry; without owner/group, the archive's owners are kept. */
  owner?: string;
  group?: string;
  /** Leading path components to drop from each entry (1 for "spire-1.9.6/bin/..."). */
  stripComponents?: number;
}

interface Valid {
  src: string;
  dest: string;
  creates?: string;
  owner?: string;
  group?: string;
  strip: number;
}

/** One entry of the archive that dest does not match, as tar's compare reports it. */
export interface Difference {
  path: string;
  what: string;
}

type Facts =
  | { kind: "created" }
  | { kind: "missing"; which: "src" | "dest"; fact: FileFact }
  | { kind: "unreadable"; detail: string }
  | { kind: "listed"; members: string[]; differences: Difference[] | undefined };

/** How many differing entries a reason names before it only counts them. */
const REASON_ENTRIES = 5;

/**
 * Extracts a .tar.gz that is on the host into an existing folder. With `creates` it is skipped
 * once that path exists; without it, tar compares the archive with dest (type, size, contents,
 * mode, link target, owner) and only extracts when something differs.
 *
 * @example
 * unarchive({ src: "/opt/spire/spire-1.9.6.tar.gz", dest: "/opt/spire/1.9.6", stripComponents: 1 })
 */
export function unarchive(args: Deferrable<UnarchiveArgs> & TaskOptions): Task {
  return makeTask("unarchive", args, callerLocation());
}

export const unarchiveModule: ModuleDefinition<Valid, Facts> = {
  name: "unarchive",
  validate(raw, where) {
    const args = new ArgReader("unarchive", raw, where, [
      "src",
      "dest",
      "creates",
      "owner",
      "group",
      "stripComponents",
    ]);
    const valid: Valid = {
      src: absolute(args, "src"),
      dest: absolute(args, "dest").replace(/(.)\/+$/, "$1"),
      strip: args.optionalNumber("stripComponents") ?? 0,
    };
    if (!Number.isInteger(valid.strip) || valid.strip < 0)
      args.fail("ARG_VALUE", `unarchive: "stripComponents" must be a whole number >= 0`);
    if (!/\.(tar\.gz|tgz)$/.test(valid.src))
      args.fail("ARG_VALUE", `unarchive: "src" must be a .tar.gz or .tgz file, got "${valid.src}"`);
    if (args.has("creates")) valid.creates = absolute(args, "creates");
    const owner = args.optionalString("owner");
    const group = args.optionalString("group");
    if (owner) valid.owner = owner;
    if (group) valid.group = group;
    return valid;
  },
  label: (args) => `unarchive ${args.src} -> ${args.dest}`,
  async facts(args, reader) {
    const paths = [args.src, args.dest, ...(args.creates ? [args.creates] : [])];
    const stats = await reader.stat(paths);
    if (args.creates && stats.get(args.creates)?.kind !== "absent") return { kind: "created" };
    const src = stats.get(args.src) ?? { kind: "absent" };
    if (src.kind !== "file") return { kind: "missing", which: "src", fact: src };
    const dest = stats.get(args.dest) ?? { kind: "absent" };
    if (dest.kind !== "directory") return { kind: "missing", which: "dest", fact: dest };
    return listAndCompare(args, reader);
  },
  plan(args, facts, ctx) {
    switch (facts.kind) {
      case "created":
        return { status: "ok", reason: `${args.creates ?? ""} exists`, ops: [] };
      case "missing":
        return failedPlan(
          facts.which === "src"
            ? `archive ${args.src} is ${describe(facts.fact)} on the host (fetch it first with getUrl or copy)`
            : `dest ${args.dest} is ${describe(facts.fact)}; unarchive extracts into an existing folder`,
          ctx,
        );
      case "unreadable":
        return failedPlan(`archive ${args.src} cannot be read as a .tar.gz: ${facts.detail}`, ctx);
      case "listed":
        return planExtract(args, facts.members, facts.differences);
    }
  },
};

function absolute(args: ArgReader, key: string): string {
  const path = args.string(key);
  if (!path.startsWith("/"))
    args.fail("ARG_VALUE", `unarchive: "${key}" must be an absolute path, got "${path}"`);
  return path;
}

function describe(fact: FileFact): string {
  return fact.kind === "absent" ? "absent" : `a ${fact.kind}`;
}

/** Lists the archive and, without `creates`, compares it with dest (read-only: tar --diff). */
async function listAndCompare(args: Valid, reader: HostReader): Promise<Facts> {
  const listing = await reader.probe(`tar -tzf ${quote(args.src)}`);
  if (listing.rc !== 0) return { kind: "unreadable", detail: outputTail(listing) };
  const members = stripMembers(listing.stdout.toString("utf8"), args.strip);
  if (args.creates) return { kind: "listed", members, differences: undefined };
  const compare = await reader.probe(`LC_ALL=C tar -dzf ${quote(args.src)} ${tarOptions(args)}`);
  if (compare.rc > 1) return { kind: "unreadable", detail: outputTail(compare) };
  const report = `${compare.stdout.toString("utf8")}\n${compare.stderr.toString("utf8")}`;
  const managed = args.owner !== undefined || args.group !== undefined;
  const differences = parseCompare(report, managed);
  if (managed) differences.push(...(await ownerDifferences(args, members, reader)));
  return { kind: "listed", members, differences };
}

function tarOptions(args: Valid): string {
  const strip = args.strip > 0 ? ` --strip-components=${args.strip}` : "";
  return `-C ${quote(args.dest)}${strip}`;
}

/** Entry names as they land under dest: `strip` leading components dropped, empty ones gone. */
export function stripMembers(listing: string, strip: number): string[] {
  return listing
    .split("\n")
    .filter((line) => line !== "")
    .map((name) => name.split("/").slice(strip).join("/").replace(/\/$/, ""))
    .filter((name) => name !== "");
}

// A modification time differs after any unpack that does not keep times; it is not a change
// of what the files hold. Owners are checked apart when the task manages them.
const IGNORED = /^Mod time differs$/;
const OWNER = /^(Uid|Gid) differs$/;

/** Reads `tar --diff` output: "NAME: What differs" and "tar: NAME: Warning: Cannot stat: ...". */
export function parseCompare(report: string, ownersManaged: boolean): Difference[] {
  const differences: Difference[] = [];
  for (const line of report.split("\n")) {
    const match =
      /^(?:tar: )?(.*?): (?:Warning: )?(Cannot stat|Cannot readlink|[A-Z][^:]*)(?::.*)?$/.exec(
        line,
      );
    if (!match) continue;
    const [, path = "", what = ""] = match;
    if (path === "" || IGNORED.test(what) || (ownersManaged && OWNER.test(what))) continue;
    if (path.startsWith("tar (child)") || path === "tar") continue;
    differences.push({ path, what: what.startsWith("Cannot") ? "missing" : what.toLowerCase() });
  }
  return differences;
}

/** Entries under dest whose owner or group is not the wanted one. */
async function ownerDifferences(
  args: Valid,
  members: string[],
  reader: HostReader,
): Promise<Difference[]> {
  if (members.length === 0) return [];
  const result = await reader.probe(
    `cd ${quote(args.dest)} && xargs -0 -r stat -c '%U %G %u %g %n' -- 2>/dev/null`,
    members.join("\0"),
  );
  const differences: Difference[] = [];
  for (const line of result.stdout.toString("utf8").split("\n")) {
    const [owner = "", group = "", uid = "", gid = "", ...rest] = line.split(" ");
    const path = rest.join(" ");
    if (path === "") continue;
    if (args.owner && args.owner !== owner && args.owner !== uid)
      differences.push({ path, what: `owner ${owner}` });
    else if (args.group && args.group !== group && args.group !== gid)
      differences.push({ path, what: `group ${group}` });
  }
  return differences;
}

function planExtract(args: Valid, members: string[], differences: Difference[] | undefined): Plan {
  if (differences?.length === 0)
    return {
      status: "ok",
      reason: `${args.dest} matches ${args.src} (${members.length} entries)`,
      ops: [],
    };
  const reason = differences
    ? `${differences.length} of ${members.length} entries differ: ${summarize(differences)}`
    : `${args.creates ?? ""} is absent`;
  return {
    status: "changed",
    reason,
    ops: extractOps(args, members),
    diff: [
      {
        path: args.dest,
        attributes: differences
          ? differences.map((d) => `${d.path}: ${d.what}`)
          : [`extract ${members.length} entries from ${args.src}`],
      },
    ],
  };
}

function summarize(differences: Difference[]): string {
  const named = differences.slice(0, REASON_ENTRIES).map((d) => `${d.path} (${d.what})`);
  const more = differences.length - named.length;
  return named.join(", ") + (more > 0 ? `, and ${more} more` : "");
}

function extractOps(args: Valid, members: string[]): Op[] {
  const ops: Op[] = [
    {
      kind: "exec",
      command: `tar -xzf ${quote(args.src)} ${tarOptions(args)}`,
      path: args.dest,
    },
  ];
  const owner = `${args.owner ?? ""}${args.group ? `:${args.group}` : ""}`;
  if (owner && members.length > 0)
    ops.push({
      kind: "exec",
      command: `cd ${quote(args.dest)} && xargs -0 -r chown -h ${quote(owner)} --`,
      display: `chown -h ${owner} the ${members.length} extracted entries`,
      stdin: members.join("\0"),
    });
  return ops;
}
