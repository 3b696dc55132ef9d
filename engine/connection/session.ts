import { randomBytes } from "node:crypto";
import { connectionError, type OmensError, type Where } from "../errors.js";
import { quote } from "../shell.js";
import type { RawChannel } from "./channel.js";
import type { ExecResult } from "./types.js";

/** Larger inputs go over a channel of their own rather than through the shell's script. */
export const SESSION_STDIN_MAX = 1024 * 1024;

/**
 * One long-lived remote `/bin/sh` per connection that runs commands one after another.
 *
 * A new SSH channel costs the host a session, a login shell and a process tree (about 10 ms on
 * loopback, several times that on a busy host); a line written to a shell that is already there
 * costs one fork. Each command runs in a subshell through `eval`, so `exit`, `cd`, `set -e`, traps
 * and even syntax errors stay inside it; its stdin is /dev/null or its own bytes (base64 in a
 * here-document), never the session's script. A marker holding a random per-session nonce,
 * the command's number and its exit code ends its stdout and its stderr.
 */
export class ShellSession {
  private readonly nonce = randomBytes(16).toString("hex");
  private sequence = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private current: Pending | undefined;
  private closed: OmensError | undefined;

  constructor(
    private readonly channel: RawChannel,
    private readonly where: Where,
  ) {
    channel.stdout.on("data", (chunk: Buffer) => this.current?.stdout.push(chunk, this));
    channel.stderr.on("data", (chunk: Buffer) => this.current?.stderr.push(chunk, this));
    channel.stdin.on("error", () => undefined); // reported through `done`
    void channel.done.then(
      () => this.end(sessionEnded(where)),
      (error: OmensError) => this.end(error),
    );
  }

  /** Whether commands can still be sent. */
  get alive(): boolean {
    return this.closed === undefined;
  }

  /** Runs one command; commands queue behind each other. */
  run(
    command: string,
    stdin: Buffer | string | undefined,
    timeoutMs?: number,
  ): Promise<ExecResult> {
    const next = this.queue.then(() => this.send(command, stdin, timeoutMs));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Ends the remote shell. */
  close(): void {
    this.closed ??= sessionEnded(this.where);
    this.channel.stdin.end();
  }

  private send(command: string, stdin: Buffer | string | undefined, timeoutMs?: number) {
    if (this.closed) return Promise.reject(this.closed);
    this.sequence += 1;
    const id = `${this.nonce}:${this.sequence}`;
    return new Promise<ExecResult>((resolve, reject) => {
      const timer =
        timeoutMs === undefined ? undefined : setTimeout(() => this.timeout(timeoutMs), timeoutMs);
      this.current = {
        stdout: new MarkedStream(Buffer.from(`${id}:`), true),
        stderr: new MarkedStream(Buffer.from(`${id}\n`), false),
        finish: (result) => {
          clearTimeout(timer);
          this.current = undefined;
          if (result instanceof Error) reject(result);
          else resolve(result);
        },
      };
      this.channel.stdin.write(script(command, stdin, id));
    });
  }

  /** Called by a stream once its marker arrived; the command is done when both have. */
  settle(): void {
    const pending = this.current;
    if (!pending?.stdout.done || !pending.stderr.done) return;
    pending.finish({
      rc: pending.stdout.rc,
      stdout: pending.stdout.content(),
      stderr: pending.stderr.content(),
    });
  }

  private timeout(ms: number) {
    this.end(
      connectionError(
        "COMMAND_TIMEOUT",
        `command timed out after ${ms} ms and was stopped`,
        this.where,
      ),
    );
    this.channel.kill();
  }

  private end(error: OmensError) {
    this.closed ??= error;
    this.current?.finish(error);
  }
}

interface Pending {
  stdout: MarkedStream;
  stderr: MarkedStream;
  finish(result: ExecResult | OmensError): void;
}

/** The output of one command: chunks up to the marker line that ends it. */
class MarkedStream {
  private chunks: Buffer[] = [];
  private length = 0;
  done = false;
  rc = -1;

  constructor(
    private readonly marker: Buffer,
    private readonly withCode: boolean,
  ) {}

  push(chunk: Buffer, session: ShellSession) {
    this.chunks.push(chunk);
    this.length += chunk.length;
    // Nothing follows a marker until the next command is sent, so it ends the stream.
    const tail = this.tail(this.marker.length + 16);
    const at = tail.lastIndexOf(this.marker);
    if (at < 0 || tail[tail.length - 1] !== 0x0a) return;
    const code = tail.subarray(at + this.marker.length, tail.length - 1).toString("latin1");
    if (this.withCode && !/^\d+$/.test(code)) return;
    this.rc = this.withCode ? Number(code) : 0;
    this.length -= tail.length - at;
    this.done = true;
    session.settle();
  }

  content(): Buffer {
    return Buffer.concat(this.chunks).subarray(0, this.length);
  }

  private tail(bytes: number): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    for (let i = this.chunks.length - 1; i >= 0 && size < bytes; i -= 1) {
      const chunk = this.chunks[i] as Buffer;
      parts.unshift(chunk);
      size += chunk.length;
    }
    const joined = Buffer.concat(parts);
    return joined.subarray(Math.max(0, joined.length - bytes));
  }
}

/** The lines sent to the session shell for one command. */
function script(command: string, stdin: Buffer | string | undefined, id: string): string {
  const run = `( eval ${quote(command)} )`;
  const input =
    stdin === undefined || stdin.length === 0
      ? `${run} </dev/null`
      : `base64 -d <<'${id.replace(":", "_")}' | ${run}\n${base64Lines(stdin)}\n${id.replace(":", "_")}`;
  return `${input}\nprintf '%s:%d\\n' ${id} $?\nprintf '%s\\n' ${id} >&2\n`;
}

function base64Lines(data: Buffer | string): string {
  const text = Buffer.from(data).toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += 76) lines.push(text.slice(i, i + 76));
  return lines.join("\n");
}

function sessionEnded(where: Where) {
  return connectionError("SESSION_ENDED", "the remote shell session ended", where);
}
