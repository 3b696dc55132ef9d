import { commandError } from "../command-error.js";
import { taskError, type Where } from "../errors.js";
import { quoteArgv } from "../shell.js";
import type { Connection, ExecResult } from "../connection/types.js";
import { factCacheOf, type CachedFact, type FactRequest } from "./cache.js";

interface Owned {
  mode: number;
  owner: string;
  group: string;
  uid: number;
  gid: number;
}

/** What is at a path on a host. */
export type FileFact =
  | { kind: "absent" }
  | ({ kind: "file"; size: number; sha256: string | undefined } & Owned)
  | ({ kind: "directory" } & Owned)
  | ({ kind: "link"; target: string } & Owned)
  | ({ kind: "other" } & Owned);

/** A file's facts with its bytes, for modules that edit contents. */
export type FileWithContent = { fact: FileFact; content: Buffer | undefined };

// One POSIX sh loop that stats every path given as an argument; one output line per path.
const STAT_SCRIPT = `for p do
if [ -L "$p" ]; then t=link; elif [ -f "$p" ]; then t=file; elif [ -d "$p" ]; then t=directory; elif [ -e "$p" ]; then t=other; else echo absent; continue; fi
s=$(stat -c '%a %U %G %u %g %s' -- "$p" 2>/dev/null) || { echo unreadable; continue; }
case $t in
file) h=$(sha256sum -- "$p" 2>/dev/null) || h=-; echo "$t $s \${h%% *}";;
link) echo "$t $s $(readlink -- "$p" | od -An -tx1 | tr -d ' \\n')";;
*) echo "$t $s -";;
esac
done`;

// Then one line per path given: the regular file's bytes in base64, "!" when unreadable, or empty.
const CONTENT_SCRIPT = `for p do
if [ -f "$p" ] && [ ! -L "$p" ]; then base64 -w0 -- "$p" 2>/dev/null || printf '!'; fi
echo
done`;

/**
 * Read-only access to a host for the facts step of a task. Reads are batched: many paths are
 * stat-ed and hashed by one remote command, and facts read ahead for later tasks are kept
 * (see FactCache) until something changes on the host.
 */
export class HostReader {
  /** Every path this reader looked at, so check mode can tell which facts an earlier plan affects. */
  readonly paths: string[] = [];

  constructor(
    readonly connection: Connection,
    private readonly where: Where,
    private readonly become: boolean | undefined,
  ) {}

  /** Facts for many paths in one remote command (or none, when they are known already). */
  async stat(paths: string[]): Promise<Map<string, FileFact>> {
    this.paths.push(...paths);
    const found = await this.read(paths.map((path) => ({ path, content: false })));
    return new Map(paths.map((path) => [path, (found.get(path) as CachedFact).fact]));
  }

  /** Facts for one path plus its contents when it is a regular file, in one command. */
  async statWithContent(path: string): Promise<FileWithContent> {
    this.paths.push(path);
    const { fact, content } = (await this.read([{ path, content: true }])).get(path) as CachedFact;
    if (fact.kind === "file" && (fact.sha256 === undefined || content === undefined)) {
      throw taskError("FILE_UNREADABLE", `cannot read ${path} (permission denied?)`, this.where);
    }
    return { fact, content: fact.kind === "file" ? content : undefined };
  }

  /**
   * Answers from the connection's fact cache; on a miss, one command reads the paths asked for
   * together with every path announced for later tasks that is not known any more.
   */
  private async read(
    wanted: { path: string; content: boolean }[],
  ): Promise<Map<string, CachedFact>> {
    const cache = factCacheOf(this.connection);
    const found = new Map<string, CachedFact>();
    for (const w of wanted) {
      const hit = cache.get(w.path, this.become, w.content);
      if (hit) found.set(w.path, hit);
    }
    if (found.size === wanted.length) return found;
    const requests = mergeRequests([
      ...wanted.map((w) => ({ ...w, become: this.become })),
      ...cache.stale(
        this.become,
        wanted.map((w) => w.path),
      ),
    ]);
    const fetched = await this.fetch(requests, new Set(wanted.map((w) => w.path)));
    for (const [path, cached] of fetched) cache.store(path, this.become, cached);
    for (const w of wanted) found.set(w.path, fetched.get(w.path) as CachedFact);
    return found;
  }

  /** Stats every path and reads the contents asked for (base64, one line per file). */
  private async fetch(
    requests: FactRequest[],
    asked: Set<string>,
  ): Promise<Map<string, CachedFact>> {
    const paths = requests.map((r) => r.path);
    const withContent = requests.filter((r) => r.content).map((r) => r.path);
    const script = [`set -- ${quoteArgv(paths)}`, STAT_SCRIPT];
    if (withContent.length > 0) script.push(`set -- ${quoteArgv(withContent)}`, CONTENT_SCRIPT);
    const result = await this.exec(script.join("\n"));
    const lines = result.stdout.toString("utf8").split("\n");
    const fetched = new Map<string, CachedFact>();
    paths.forEach((path, i) => {
      const fact = parseStatLineOf(lines[i] ?? "", path, this.where, asked.has(path));
      if (fact) fetched.set(path, { fact });
    });
    withContent.forEach((path, i) => {
      const line = lines[paths.length + i] ?? "";
      const entry = fetched.get(path);
      if (entry?.fact.kind === "file" && line !== "!") entry.content = Buffer.from(line, "base64");
    });
    return fetched;
  }

  /** Runs a read-only probe, with optional stdin; its exit code is returned, not judged. */
  async probe(command: string, stdin?: Buffer | string): Promise<ExecResult> {
    return this.connection.exec(command, {
      ...(this.become === undefined ? {} : { become: this.become }),
      ...(stdin === undefined ? {} : { stdin }),
    });
  }

  private async exec(script: string, allowFailure = false): Promise<ExecResult> {
    const result = await this.probe(script);
    if (result.rc !== 0 && !allowFailure)
      throw commandError("reading facts", script, result, this.where);
    return result;
  }
}

/** One request per path; a path read with contents once is read with contents. */
function mergeRequests(requests: FactRequest[]): FactRequest[] {
  const byPath = new Map<string, FactRequest>();
  for (const r of requests) {
    const earlier = byPath.get(r.path);
    byPath.set(r.path, { ...r, content: r.content || earlier?.content === true });
  }
  return [...byPath.values()];
}

/** A path read ahead for a later task does not fail this one: that task reads it again. */
function parseStatLineOf(line: string, path: string, where: Where, asked: boolean) {
  try {
    return parseStatLine(line, path, where);
  } catch (error) {
    if (asked) throw error;
    return undefined;
  }
}

function parseStatLine(line: string, path: string, where: Where): FileFact {
  const [kind, mode, owner, group, uid, gid, size, extra] = line.trim().split(" ");
  if (kind === "absent") return { kind: "absent" };
  if (kind === "unreadable" || !mode || !owner || !group || !uid || !gid) {
    throw commandError(
      `reading facts of ${path}`,
      "stat",
      {
        rc: 1,
        stdout: Buffer.from(line),
        stderr: Buffer.from("permission denied or unexpected output"),
      },
      where,
    );
  }
  const owned: Owned = {
    mode: parseInt(mode, 8),
    owner,
    group,
    uid: Number(uid),
    gid: Number(gid),
  };
  switch (kind) {
    case "file":
      return { kind, ...owned, size: Number(size), sha256: extra === "-" ? undefined : extra };
    case "link":
      return {
        kind,
        ...owned,
        target: Buffer.from(extra ?? "", "hex")
          .toString("utf8")
          .replace(/\n$/, ""),
      };
    case "directory":
      return { kind, ...owned };
    default:
      return { kind: "other", ...owned };
  }
}
