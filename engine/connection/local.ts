import { spawn } from "node:child_process";
import { userInfo } from "node:os";
import { runOnChannel, wrapBecome } from "./channel.js";
import type { BecomeSettings, Connection, ExecOptions, ExecResult } from "./types.js";

/** Runs tasks on the controller itself, through /bin/sh. */
export class LocalConnection implements Connection {
  readonly describe = "local";
  readonly user = userInfo().username;
  commandCount = 0;

  constructor(
    readonly host: string,
    private readonly become: BecomeSettings | undefined,
    readonly becomeByDefault: boolean,
  ) {}

  async open(): Promise<void> {}

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const become = (options.become ?? this.becomeByDefault) ? this.become : undefined;
    const line = become ? wrapBecome(command, become) : command;
    this.commandCount += 1;
    const child = spawn("/bin/sh", ["-c", line], { stdio: ["pipe", "pipe", "pipe"] });
    const done = new Promise<{ rc: number | null; signal?: string }>((resolve) => {
      child.on("close", (rc, signal) => resolve(signal ? { rc, signal } : { rc }));
    });
    const channel = {
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      done,
      kill: () => child.kill(),
    };
    return runOnChannel(channel, {
      ...options,
      becomeSettings: become,
      where: { host: this.host },
      login: this.user,
    });
  }

  async close(): Promise<void> {}
}
