import { commandError } from "../command-error.js";
import { taskError, type Where } from "../errors.js";
import { quoteArgv } from "../shell.js";
import type { Connection, ExecResult } from "../connection/types.js";

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

/**
 * Read-only access to a host for the facts step of a task. Reads are batched: many paths are
 * stat-ed and hashed by one remote command.
 */
export class HostReader {
  /** Every path this reader looked at, so check mode can tell which facts an earlier plan affects. */
  readonly paths: string[] = [];

  constructor(
    readonly connection: Connection,
    private readonly where: Where,
    private readonly become: boolean | undefined,
  ) {}

  /** Facts for many paths in one remote command. */
  async stat(paths: string[]): Promise<Map<string, FileFact>> {
    this.paths.push(...paths);
    const result = await this.exec(`set -- ${quoteArgv(paths)}\n${STAT_SCRIPT}`);
    const lines = result.stdout.toString("utf8").split("\n");
    return new Map(paths.map((path, i) => [path, parseStatLine(lines[i] ?? "", path, this.where)]));
  }

  /** Facts for one path plus its contents when it is a regular file, in one command. */
  async statWithContent(path: string): Promise<FileWithContent> {
    this.paths.push(path);
    const script = `set -- ${quoteArgv([path])}\n${STAT_SCRIPT}\n[ -f "$1" ] && [ ! -L "$1" ] && cat -- "$1"`;
    const result = await this.exec(script, true);
    const newline = result.stdout.indexOf(0x0a);
    const fact = parseStatLine(
      result.stdout.subarray(0, newline).toString("utf8"),
      path,
      this.where,
    );
    if (fact.kind === "file" && fact.sha256 === undefined) {
      throw taskError("FILE_UNREADABLE", `cannot read ${path} (permission denied?)`, this.where);
    }
    const content = fact.kind === "file" ? result.stdout.subarray(newline + 1) : undefined;
    return { fact, content };
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
