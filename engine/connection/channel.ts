import type { Readable, Writable } from "node:stream";
import { connectionError, type Where } from "../errors.js";
import { quote } from "../shell.js";
import type { BecomeSettings, ExecOptions, ExecResult } from "./types.js";

/** The parts of a running remote or local process that the engine needs. */
export interface RawChannel {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /** Resolves once the process has exited and its streams are drained. */
  done: Promise<{ rc: number | null; signal?: string }>;
  kill(): void;
}

const PROMPT = "[omens-sudo-prompt]";
const BECOME_OK = "OMENS-BECOME-OK";

/**
 * Wraps a command so that it runs through sudo. The wrapped command prints a marker on stderr
 * once sudo has let it through; stdin is only written after that marker, so a password is
 * never fed into the command itself and a cached sudo ticket cannot swallow it.
 */
export function wrapBecome(command: string, become: BecomeSettings): string {
  const mode = become.password ? "-k -S" : "-n";
  const inner = `echo ${BECOME_OK} >&2; exec /bin/sh -c "$0"`;
  return `sudo ${mode} -H -p ${quote(PROMPT)} -u ${quote(become.user)} -- /bin/sh -c ${quote(inner)} ${quote(command)}`;
}

/** Runs one command over a channel, handling sudo's prompt, stdin and a timeout. */
export async function runOnChannel(
  channel: RawChannel,
  options: ExecOptions & BecomeContext,
): Promise<ExecResult> {
  const stdout: Buffer[] = [];
  const stderr = new StderrWatcher(options.becomeSettings !== undefined);
  channel.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  const timer = startTimer(channel, options.timeoutMs);
  const sendStdin = () => endStdin(channel.stdin, options.stdin);
  let becomeFailure: Error | undefined;
  if (options.becomeSettings) {
    stderr.onPrompt = (count) => {
      const password = options.becomeSettings?.password;
      if (password && count === 1) channel.stdin.write(password.reveal() + "\n");
      else {
        becomeFailure = becomeError(password ? "wrong" : "required", options);
        channel.kill();
      }
    };
    stderr.onBecomeOk = sendStdin;
  } else {
    sendStdin();
  }
  channel.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
  const { rc, signal } = await channel.done;
  clearTimeout(timer.handle);
  if (becomeFailure) throw becomeFailure;
  if (timer.fired) throw timeoutError(options);
  const result = { rc: rc ?? -1, stdout: Buffer.concat(stdout), stderr: stderr.text() };
  if (options.becomeSettings && !stderr.passed) checkBecomeRefused(result, options);
  return signal ? { ...result, signal } : result;
}

function endStdin(stdin: Writable, data: Buffer | string | undefined) {
  stdin.on("error", () => undefined); // the command may exit without reading its input
  if (data !== undefined && data.length > 0) stdin.write(data);
  stdin.end();
}

function startTimer(channel: RawChannel, timeoutMs: number | undefined) {
  const state: { fired: boolean; handle?: NodeJS.Timeout } = { fired: false };
  if (timeoutMs !== undefined) {
    state.handle = setTimeout(() => {
      state.fired = true;
      channel.kill();
    }, timeoutMs);
  }
  return state;
}

/** Collects stderr while watching for sudo's prompt and the become marker. */
class StderrWatcher {
  private buffer = Buffer.alloc(0);
  private prompts = 0;
  passed: boolean;
  onPrompt: (count: number) => void = () => undefined;
  onBecomeOk: () => void = () => undefined;

  constructor(watching: boolean) {
    this.passed = !watching;
  }

  push(chunk: Buffer) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (this.passed) return;
    this.scan();
  }

  private scan() {
    let text = this.buffer.toString("latin1");
    while (text.includes(PROMPT)) {
      text = text.replace(PROMPT, "");
      this.buffer = Buffer.from(text, "latin1");
      this.prompts += 1;
      this.onPrompt(this.prompts);
    }
    const at = text.indexOf(BECOME_OK + "\n");
    if (at >= 0) {
      this.passed = true;
      this.buffer = Buffer.from(text.slice(at + BECOME_OK.length + 1), "latin1");
      this.onBecomeOk();
    }
  }

  text(): Buffer {
    return this.buffer;
  }
}

/** Who runs a command and where, for become failures that name host, user and the fix. */
interface BecomeContext {
  becomeSettings?: BecomeSettings;
  where: Where;
  /** The user sudo runs as before becoming another (the SSH login). */
  login?: string;
}

function becomeError(kind: "wrong" | "required", options: BecomeContext) {
  const user = options.becomeSettings?.user ?? "root";
  const login = options.login ?? "the connecting user";
  const host = options.where.host ?? "the host";
  if (kind === "wrong") {
    const source = options.becomeSettings?.password?.label.replace(/^env:/, "$") ?? "";
    return connectionError(
      "BECOME_PASSWORD_WRONG",
      `sudo on ${host} rejected the become password of ${login} (to become ${user})`,
      options.where,
      `put ${login}'s sudo password on ${host} in ${source || "the variable named by becomePasswordEnv"}`,
    );
  }
  return connectionError(
    "BECOME_PASSWORD_REQUIRED",
    `sudo on ${host} asks ${login} for a password to become ${user}, and none is configured`,
    options.where,
    `set becomePasswordEnv (the environment variable holding ${login}'s sudo password) for ${host} in the inventory, or give ${login} NOPASSWD sudo rights`,
  );
}

function checkBecomeRefused(result: ExecResult, options: BecomeContext) {
  const text = result.stderr.toString("utf8");
  const user = options.becomeSettings?.user ?? "root";
  const login = options.login ?? "the connecting user";
  if (/a password is required/.test(text)) throw becomeError("required", options);
  if (/not in the sudoers|not allowed to execute|may not run sudo/.test(text)) {
    throw connectionError(
      "BECOME_NOT_ALLOWED",
      `sudo on ${options.where.host ?? "the host"} refused to let ${login} become ${user}: ${text.trim().split("\n").pop()}`,
      options.where,
      `grant ${login} sudo rights on the host, or connect as a user that has them`,
    );
  }
  if (/sudo: .*(command not found|not found)/.test(text) || result.rc === 127) {
    throw connectionError("BECOME_NO_SUDO", "sudo is not installed on the host", options.where);
  }
}

function timeoutError(options: { timeoutMs?: number; where: Where }) {
  return connectionError(
    "COMMAND_TIMEOUT",
    `command timed out after ${options.timeoutMs} ms and was stopped`,
    options.where,
  );
}
