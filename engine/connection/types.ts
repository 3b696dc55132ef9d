import type { Secret } from "../secret.js";

/** How to become another user on the host. */
export interface BecomeSettings {
  user: string;
  /** sudo's password; without it sudo runs with -n and fails fast if it asks for one. */
  password?: Secret;
}

export interface ExecOptions {
  /** Bytes written to the command's standard input, then closed. */
  stdin?: Buffer | string;
  /** Run through sudo as the connection's become user. */
  become?: boolean;
  /** Give up after this many milliseconds. */
  timeoutMs?: number;
}

export interface ExecResult {
  rc: number;
  signal?: string;
  stdout: Buffer;
  stderr: Buffer;
}

/** A way to run shell commands on one host. Only the connection layer talks to hosts. */
export interface Connection {
  readonly host: string;
  /** A short description for messages: `root@10.77.0.12:22` or `local`. */
  readonly describe: string;
  /** The user commands run as before any become (the SSH login, or the controller's user). */
  readonly user?: string;
  /** Whether tasks on this host run through sudo unless they say otherwise. */
  readonly becomeByDefault: boolean;
  open(): Promise<void>;
  /** Runs a POSIX shell command line and collects its result. */
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  close(): Promise<void>;
  /** Number of remote commands run so far. */
  readonly commandCount: number;
  /** Number of SSH channels opened so far (a command may share one with others). */
  readonly channelCount?: number;
  /** Bytes of commands and their input sent to the host so far. */
  readonly bytesSent?: number;
}
