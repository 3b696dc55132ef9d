import { createHash } from "node:crypto";
import type { Connection } from "../connection/types.js";
import { taskError } from "../errors.js";
import { quote } from "../shell.js";

/**
 * Handlers a host is owed, kept on the host itself. A task that changes something and notifies
 * a handler records it here at once; the record goes when the handler has run. A run that stops
 * in between (a later failure, Ctrl-C, a lost connection) leaves the record, and the next run
 * of any play that defines a handler of that name runs it, even when nothing changes then.
 * Each record names its inventory host too, for inventories that reach one machine under
 * several names.
 */
export function owedDir(): string {
  // OMENS_STATE_DIR moves the records, e.g. for tests whose hosts are this machine.
  const base = process.env.OMENS_STATE_DIR;
  return `${base?.startsWith("/") ? base : "/var/lib/omens"}/owed-handlers`;
}

function recordPath(host: string, handler: string): string {
  const id = createHash("sha256").update(`${host}\t${handler}`).digest("hex").slice(0, 16);
  return `${owedDir()}/${id}`;
}

/** Records handlers as owed. Writes each record whole (temp file, then rename). */
export async function recordOwed(connection: Connection, handlers: string[]): Promise<void> {
  if (handlers.length === 0) return;
  const writes = handlers.map((name) => {
    const path = recordPath(connection.host, name);
    const line = `${connection.host}\t${name}`;
    const temp = quote(`${path}.tmp`);
    return `printf '%s\\n' ${quote(line)} > ${temp} && mv -f ${temp} ${quote(path)}`;
  });
  await run(connection, [`mkdir -p -m 0700 ${quote(owedDir())}`, ...writes].join(" && "));
}

/** The names of the handlers the host is owed; none when nothing was recorded. */
export async function readOwed(connection: Connection): Promise<string[]> {
  const result = await connection.exec(
    `d=${quote(owedDir())}; [ -d "$d" ] || exit 0; for f in "$d"/*; do case "$f" in *.tmp) ;; *) [ -f "$f" ] && cat "$f";; esac; done; true`,
    { become: connection.becomeByDefault },
  );
  const mine = `${connection.host}\t`;
  return result.stdout
    .toString()
    .split("\n")
    .filter((line) => line.startsWith(mine))
    .map((line) => line.slice(mine.length));
}

/** Drops the records of handlers that have run. */
export async function clearOwed(connection: Connection, handlers: string[]): Promise<void> {
  if (handlers.length === 0) return;
  const paths = handlers.map((name) => quote(recordPath(connection.host, name))).join(" ");
  await run(connection, `rm -f ${paths} && { rmdir ${quote(owedDir())} 2>/dev/null || true; }`);
}

async function run(connection: Connection, command: string): Promise<void> {
  const result = await connection.exec(command, { become: connection.becomeByDefault });
  if (result.rc === 0) return;
  const why = result.stderr.toString().trim() || `exit ${result.rc}`;
  throw taskError("OWED_HANDLERS", `cannot keep owed handlers in ${owedDir()}: ${why}`, {
    host: connection.host,
  });
}
