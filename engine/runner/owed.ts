import { createHash } from "node:crypto";
import type { Connection } from "../connection/types.js";
import { taskError } from "../errors.js";
import { quote } from "../shell.js";

/**
 * Handlers a host is owed, kept on the host itself. A task that changes something and notifies
 * a handler records it here at once; the record goes when the handler has run. A run that stops
 * in between (a later failure, Ctrl-C, a lost connection) leaves the record, and the next run
 * of any play that defines a handler of that name runs it, even when nothing changes then.
 */
export const OWED_DIR = "/var/lib/omens/owed-handlers";

function recordPath(handler: string): string {
  return `${OWED_DIR}/${createHash("sha256").update(handler).digest("hex").slice(0, 16)}`;
}

/** Records handlers as owed. Writes each record whole (temp file, then rename). */
export async function recordOwed(connection: Connection, handlers: string[]): Promise<void> {
  if (handlers.length === 0) return;
  const writes = handlers.map((name) => {
    const path = recordPath(name);
    return `printf '%s\\n' ${quote(name)} > ${path}.tmp && mv -f ${path}.tmp ${path}`;
  });
  await run(connection, [`mkdir -p -m 0700 ${OWED_DIR}`, ...writes].join(" && "));
}

/** The names of the handlers the host is owed; none when nothing was recorded. */
export async function readOwed(connection: Connection): Promise<string[]> {
  const result = await connection.exec(
    `[ -d ${OWED_DIR} ] || exit 0; for f in ${OWED_DIR}/*; do case "$f" in *.tmp) ;; *) [ -f "$f" ] && cat "$f";; esac; done; true`,
    { become: connection.becomeByDefault },
  );
  return result.stdout
    .toString()
    .split("\n")
    .filter((line) => line !== "");
}

/** Drops the records of handlers that have run. */
export async function clearOwed(connection: Connection, handlers: string[]): Promise<void> {
  if (handlers.length === 0) return;
  const paths = handlers.map(recordPath).join(" ");
  await run(connection, `rm -f ${paths} && { rmdir ${OWED_DIR} 2>/dev/null || true; }`);
}

async function run(connection: Connection, command: string): Promise<void> {
  const result = await connection.exec(command, { become: connection.becomeByDefault });
  if (result.rc === 0) return;
  const why = result.stderr.toString().trim() || `exit ${result.rc}`;
  throw taskError("OWED_HANDLERS", `cannot keep owed handlers in ${OWED_DIR}: ${why}`, {
    host: connection.host,
  });
}
