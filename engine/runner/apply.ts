import { commandError } from "../command-error.js";
import type { Where } from "../errors.js";
import { formatMode } from "../mode.js";
import { quote } from "../shell.js";
import type { Connection, ExecResult } from "../connection/types.js";
import { factCacheOf } from "../facts/cache.js";
import type { ApplyOutput, Op } from "../modules/types.js";

/** Hooks the runner gives the applier, for `-v` output. */
export interface ApplyObserver {
  command(text: string): void;
  output(rc: number, stdout: string, stderr: string): void;
}

/**
 * Carries out a plan's ops in order. Runs of simple ops share one remote command; each write
 * and each exec gets its own, because they use stdin.
 */
export async function applyOps(
  connection: Connection,
  ops: Op[],
  where: Where,
  become: boolean | undefined,
  observer: ApplyObserver,
): Promise<ApplyOutput> {
  factCacheOf(connection).forget(ops);
  let output: ApplyOutput = {};
  const becomeHint = (result: ExecResult) =>
    (become ?? connection.becomeByDefault) ? undefined : permissionHint(connection, result, where);
  let pending: string[] = [];
  const run = async (
    script: string,
    display: string,
    stdin?: Buffer | string,
    allowFailure = false,
  ) => {
    observer.command(display);
    const options = {
      ...(stdin === undefined ? {} : { stdin }),
      ...(become === undefined ? {} : { become }),
    };
    const result = await connection.exec(script, options);
    observer.output(result.rc, result.stdout.toString("utf8"), result.stderr.toString("utf8"));
    if (result.rc !== 0 && !allowFailure)
      throw commandError("applying changes", display, result, where, becomeHint(result));
    return result;
  };
  const flush = async () => {
    if (pending.length === 0) return;
    const script = ["set -e", ...pending].join("\n");
    pending = [];
    await run(script, script);
  };
  for (const op of ops) {
    if (op.kind === "exec") {
      await flush();
      const result = await run(op.command, op.display ?? op.command, op.stdin, op.allowFailure);
      output = {
        rc: result.rc,
        stdout: result.stdout.toString("utf8"),
        stderr: result.stderr.toString("utf8"),
      };
    } else if (op.kind === "write") {
      await flush();
      await run(
        writeScript(op),
        `write ${op.path} (${op.content.length} bytes, atomic)`,
        op.content,
      );
    } else {
      pending.push(simpleOpScript(op));
    }
  }
  await flush();
  return output;
}

/** The fix for a permission error of a task that ran without become. */
function permissionHint(
  connection: Connection,
  result: ExecResult,
  where: Where,
): string | undefined {
  if (!/Permission denied|Operation not permitted/.test(result.stderr.toString("utf8")))
    return undefined;
  const user = connection.user ?? "the connecting user";
  return `the task ran as ${user} without become: set become: true on the task, or on host ${where.host ?? ""} in the inventory`;
}

/**
 * Writes stdin to a temp file beside the target, checks that every byte arrived, sets its mode
 * and owner, syncs it and renames it over the target: readers see the old file or the new one,
 * never a partial one. A failure (disk full, permission, a cut connection whose stdin ends
 * early) removes the temp file and leaves the old file in place. The temp file's name carries
 * the writing shell's pid, so a write killed outright (SIGKILL: no trap runs) leaves a temp
 * file that the next write into that folder recognises as stale and removes.
 */
export function writeScript(op: Extract<Op, { kind: "write" }>): string {
  const mode = op.mode === undefined ? "" : formatMode(op.mode);
  const owner = ownerSpec(op.owner, op.group);
  const size = op.content.length;
  return [
    "set -e",
    `p=${quote(op.path)}`,
    `[ -L "$p" ] && p=$(readlink -f -- "$p")`,
    `[ -d "$p" ] && { echo "$p is a directory" >&2; exit 1; }`,
    `d=$(dirname -- "$p")`,
    STALE_TEMP_CLEANUP,
    `t=$(mktemp -- "$d/.omens.$$.XXXXXXXX")`,
    `trap 'rm -f -- "$t"' EXIT`,
    `trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM`,
    `cat > "$t"`,
    `n=$(wc -c < "$t")`,
    `[ "$n" -eq ${size} ] || { echo "incomplete write: $n of ${size} bytes arrived; $p left as it was" >&2; exit 1; }`,
    mode
      ? `chmod ${mode} -- "$t"`
      : `if [ -e "$p" ]; then chmod --reference="$p" -- "$t"; else chmod "$(printf %04o $((0666 & ~0$(umask))))" -- "$t"; fi`,
    owner ? `chown ${owner} -- "$t"` : `[ -e "$p" ] && chown --reference="$p" -- "$t" || true`,
    `sync -- "$t" 2>/dev/null || true`,
    ...(op.validate === undefined
      ? []
      : [
          `( ${op.validate.replaceAll("%s", '"$t"')} ) >&2 || { echo "the validate command refused the new content; $p left as it was" >&2; exit 1; }`,
        ]),
    `mv -f -- "$t" "$p"`,
    `trap - EXIT`,
  ].join("\n");
}

// Temp files of earlier writes whose shell no longer runs: a write that was killed outright.
const STALE_TEMP_CLEANUP = [
  `for s in "$d"/.omens.*.*; do`,
  `  [ -f "$s" ] || continue`,
  `  w=\${s#"$d"/.omens.}; w=\${w%%.*}`,
  `  case $w in ""|*[!0-9]*) continue;; esac`,
  `  [ -d "/proc/$w" ] || rm -f -- "$s" 2>/dev/null || true`,
  `done`,
].join("\n");

function simpleOpScript(op: Exclude<Op, { kind: "write" | "exec" }>): string {
  const p = quote(op.path);
  switch (op.kind) {
    case "mkdir":
      return [
        `mkdir -p -- ${p}`,
        op.mode === undefined ? "" : `chmod ${formatMode(op.mode)} -- ${p}`,
        ownerSpec(op.owner, op.group) ? `chown ${ownerSpec(op.owner, op.group)} -- ${p}` : "",
      ]
        .filter(Boolean)
        .join("\n");
    case "chmod":
      return `chmod ${formatMode(op.mode)} -- ${p}`;
    case "chown":
      return `chown ${op.followLinks ? "" : "-h "}${ownerSpec(op.owner, op.group)} -- ${p}`;
    case "remove":
      return `rm -rf -- ${p}`;
    case "touch":
      return `touch -- ${p}`;
    case "symlink": {
      const owner = ownerSpec(op.owner, op.group);
      return [
        `t=$(dirname -- ${p})/.omens-link.$$`,
        `ln -sfn -- ${quote(op.target)} "$t"`,
        owner ? `chown -h ${owner} -- "$t"` : "",
        `mv -Tf -- "$t" ${p}`,
      ]
        .filter(Boolean)
        .join("\n");
    }
  }
}

function ownerSpec(owner: string | undefined, group: string | undefined): string {
  if (owner && group) return quote(`${owner}:${group}`);
  if (owner) return quote(owner);
  if (group) return quote(`:${group}`);
  return "";
}
