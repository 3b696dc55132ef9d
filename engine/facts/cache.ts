import type { Connection } from "../connection/types.js";
import type { FileFact } from "./reader.js";

/** A path whose facts a task will read, and whether it needs the file's bytes too. */
export interface FactRequest {
  path: string;
  content: boolean;
  /** Read through sudo (true), without (false), or as the host's default (undefined). */
  become: boolean | undefined;
}

/** What the cache holds for one path. */
export interface CachedFact {
  fact: FileFact;
  /** The file's bytes, when they were read. */
  content?: Buffer;
}

/**
 * Facts read ahead for the tasks of a play, per connection. The first read of a play stats (and,
 * for line edits, reads) every path its tasks will look at in one remote command; later reads
 * are answered from here until something changes on the host. Every applied op drops what it
 * may have changed: its path, the folders above it and everything below it; a command drops all,
 * because anything may have changed. A read that misses fetches again, in the same command,
 * the paths of the next few tasks that are not known any more.
 *
 * Known limit: a change made on the host by anything other than this run, between the read and
 * the task, is not seen (the task plans from what was read); any command drops the cache.
 */
export class FactCache {
  private readonly known = new Map<string, CachedFact>();
  private readonly announced = new Map<string, FactRequest>();
  /** Announced keys in task order, and how far the tasks have read. */
  private order: string[] = [];
  private cursor = 0;
  /** The next miss reads every announced path, not only the next few. */
  private wholePlay = false;

  /** Paths the coming tasks will read, in task order; they are fetched together at the next miss. */
  announce(requests: FactRequest[]): void {
    this.order = [];
    this.cursor = 0;
    this.wholePlay = true;
    for (const request of requests) {
      const key = keyOf(request.path, request.become);
      const earlier = this.announced.get(key);
      this.announced.set(key, {
        ...request,
        content: request.content || earlier?.content === true,
      });
      this.order.push(key);
    }
  }

  /** The cached facts of a path, if they are known (and its bytes when `content` is asked). */
  get(path: string, become: boolean | undefined, content: boolean): CachedFact | undefined {
    const cached = this.known.get(keyOf(path, become));
    if (!cached || (content && cached.fact.kind === "file" && cached.content === undefined))
      return undefined;
    return cached;
  }

  store(path: string, become: boolean | undefined, cached: CachedFact): void {
    this.known.set(keyOf(path, become), cached);
  }

  /**
   * Announced paths read the same way that are not known, to fetch along with a miss: all of
   * them at the play's first read, afterwards those of the next few tasks. (Once files exist,
   * each one read costs the host a stat and a hash, and a command makes everything stale.)
   */
  stale(become: boolean | undefined, asked: string[]): FactRequest[] {
    const keys = new Set(asked.map((path) => keyOf(path, become)));
    const at = this.order.findIndex((key, i) => i >= this.cursor && keys.has(key));
    if (at >= 0) this.cursor = at;
    const ahead = this.wholePlay ? undefined : this.cursor + READ_AHEAD;
    this.wholePlay = false;
    const window = new Set(this.order.slice(this.cursor, ahead));
    return [...window]
      .filter((key) => !this.known.has(key))
      .map((key) => this.announced.get(key) as FactRequest)
      .filter((request) => request.become === become);
  }

  /** Forgets what these ops may change. A command, or a write through a link, may change anything. */
  forget(ops: readonly ({ kind: string } & { path?: string })[]): void {
    const paths = ops.map((op) => op.path);
    const isLink = (p: string) =>
      [...this.known.entries()].some(([k, c]) => k.endsWith(`\0${p}`) && c.fact.kind === "link");
    if (paths.some((p) => p === undefined || isLink(p))) this.invalidate();
    else this.invalidate(paths as string[]);
  }

  /** Forgets what changes to these paths may have made stale; no paths means everything. */
  invalidate(paths?: string[]): void {
    if (paths === undefined) {
      this.known.clear();
      return;
    }
    for (const key of [...this.known.keys()]) {
      const path = key.slice(key.indexOf("\0") + 1);
      if (paths.some((changed) => related(path, changed))) this.known.delete(key);
    }
  }
}

/** How many tasks ahead a miss reads, after the play's first read. */
const READ_AHEAD = 8;

const caches = new WeakMap<Connection, FactCache>();

/** The fact cache of one host's connection. */
export function factCacheOf(connection: Connection): FactCache {
  let cache = caches.get(connection);
  if (!cache) {
    cache = new FactCache();
    caches.set(connection, cache);
  }
  return cache;
}

function keyOf(path: string, become: boolean | undefined): string {
  return `${String(become)}\0${path}`;
}

/** The same path, a folder above it, or a path below it. */
function related(a: string, b: string): boolean {
  return a === b || a.startsWith(b.endsWith("/") ? b : `${b}/`) || b.startsWith(`${a}/`);
}
