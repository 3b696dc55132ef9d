import { readFileSync } from "node:fs";
import { Client, type ClientChannel, type ConnectConfig } from "ssh2";
import { connectionError, OmensError, type Where } from "../errors.js";
import { quote } from "../shell.js";
import { runOnChannel, wrapBecome, type RawChannel } from "./channel.js";
import { checkHostKey, fingerprint, type HostKeyVerdict } from "./known-hosts.js";
import { SESSION_STDIN_MAX, ShellSession } from "./session.js";
import type { BecomeSettings, Connection, ExecOptions, ExecResult } from "./types.js";

/** Everything needed to reach one host over SSH. */
export interface SshSettings {
  host: string;
  address: string;
  port: number;
  user: string;
  privateKeyPath?: string;
  /** Use the agent at SSH_AUTH_SOCK as well as (or instead of) a key file. */
  useAgent: boolean;
  knownHostsPath: string;
  /** Other names the host key may be recorded under in known_hosts. */
  knownHostsAliases: string[];
  connectTimeoutMs: number;
  become?: BecomeSettings;
  becomeByDefault: boolean;
}

/**
 * One SSH connection per host, reused by every task. Commands go to one long-lived remote shell
 * on it (see ShellSession); commands run through sudo, and large inputs, get a channel each.
 */
export class SshConnection implements Connection {
  readonly host: string;
  readonly describe: string;
  readonly user: string;
  readonly becomeByDefault: boolean;
  commandCount = 0;
  channelCount = 0;
  bytesSent = 0;
  private client: Client | undefined;
  private closedReason: OmensError | undefined;
  private session: Promise<ShellSession> | undefined;

  constructor(private readonly settings: SshSettings) {
    this.host = settings.host;
    this.describe = `${settings.user}@${settings.address}:${settings.port}`;
    this.user = settings.user;
    this.becomeByDefault = settings.becomeByDefault;
  }

  async open(): Promise<void> {
    if (this.client) return;
    this.client = await connect(this.settings, this.where());
    this.client.on("close", () => {
      this.closedReason ??= connectionError(
        "CONNECTION_LOST",
        `connection to ${this.describe} was lost`,
        this.where(),
      );
      this.client = undefined;
    });
    this.client.on("error", () => undefined); // reported through "close" and failed execs
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const client = this.client;
    if (!client)
      throw this.closedReason ?? connectionError("NOT_CONNECTED", "not connected", this.where());
    const become = (options.become ?? this.becomeByDefault) ? this.settings.become : undefined;
    this.commandCount += 1;
    this.bytesSent += Buffer.byteLength(command) + (options.stdin?.length ?? 0);
    if (!become && (options.stdin?.length ?? 0) <= SESSION_STDIN_MAX) {
      const session = await this.openSession(client);
      return session.run(command, options.stdin, options.timeoutMs);
    }
    const line = become ? wrapBecome(command, become) : command;
    const channel = await this.openChannel(client, line);
    return runOnChannel(channel, {
      ...options,
      becomeSettings: become,
      where: this.where(),
      login: this.user,
    });
  }

  async close(): Promise<void> {
    this.closedReason = connectionError("CONNECTION_CLOSED", "connection closed", this.where());
    const session = this.session;
    this.session = undefined;
    if (session) (await session.catch(() => undefined))?.close();
    this.client?.end();
    this.client = undefined;
  }

  private where(): Where {
    return { host: this.host };
  }

  /** The shell session, opened on first use and again after it ended (a timeout stops it). */
  private async openSession(client: Client): Promise<ShellSession> {
    const open = this.session;
    if (open) {
      const session = await open.catch(() => undefined);
      if (session?.alive) return session;
      if (this.session !== open) return this.openSession(client);
    }
    const opening = this.openChannel(client, "exec /bin/sh").then(
      (channel) => new ShellSession(channel, this.where()),
    );
    this.session = opening;
    return opening;
  }

  private openChannel(client: Client, command: string): Promise<RawChannel> {
    this.channelCount += 1;
    return openChannel(client, command, this.where(), () => this.closedReason);
  }
}

function connect(settings: SshSettings, where: Where): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let verdict: HostKeyVerdict = { kind: "match" };
    let offeredKey = "";
    const config: ConnectConfig = {
      host: settings.address,
      port: settings.port,
      username: settings.user,
      readyTimeout: settings.connectTimeoutMs,
      // A host whose link drops is declared gone after about one connect timeout.
      keepaliveInterval: Math.max(500, Math.round(settings.connectTimeoutMs / 3)),
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        offeredKey = key.toString("base64");
        const names = [settings.address, ...settings.knownHostsAliases];
        verdict = checkHostKey(settings.knownHostsPath, names, settings.port, key);
        return verdict.kind === "match";
      },
    };
    if (settings.privateKeyPath) config.privateKey = readKey(settings.privateKeyPath, where);
    if (settings.useAgent && process.env.SSH_AUTH_SOCK) config.agent = process.env.SSH_AUTH_SOCK;
    client.once("ready", () => resolve(client));
    client.once("error", (error: Error & { level?: string; code?: string }) => {
      client.end();
      reject(classifyConnectError(error, settings, verdict, offeredKey, where));
    });
    client.connect(config);
  });
}

function readKey(path: string, where: Where): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw connectionError(
      "SSH_KEY_UNREADABLE",
      `cannot read SSH key ${path}`,
      where,
      undefined,
      error,
    );
  }
}

/** Tells DNS, TCP, timeout, host-key and authentication failures apart, each with a fix. */
function classifyConnectError(
  error: Error & { level?: string; code?: string },
  settings: SshSettings,
  verdict: HostKeyVerdict,
  offeredKey: string,
  where: Where,
): OmensError {
  const target = `${settings.address}:${settings.port}`;
  if (verdict.kind !== "match") return hostKeyError(verdict, settings, offeredKey, where);
  const code = error.code ?? "";
  const table: Record<string, [string, string, string?]> = {
    ENOTFOUND: ["DNS_FAILED", `cannot resolve ${settings.address}`, "check the host's address"],
    EAI_AGAIN: ["DNS_FAILED", `cannot resolve ${settings.address} (DNS not answering)`],
    ECONNREFUSED: [
      "CONNECTION_REFUSED",
      `connection to ${target} refused (nothing listens there)`,
      "check that sshd runs and the port is right",
    ],
    EHOSTUNREACH: ["HOST_UNREACHABLE", `no route to ${target}`],
    ENETUNREACH: ["NETWORK_UNREACHABLE", `network unreachable for ${target}`],
    ECONNRESET: ["CONNECTION_RESET", `connection to ${target} was reset`],
  };
  const known = table[code];
  if (known) return connectionError(known[0], known[1], where, known[2], error);
  if (error.level === "client-timeout" || /Timed out/i.test(error.message)) {
    return connectionError(
      "CONNECT_TIMEOUT",
      `no SSH answer from ${target} within ${settings.connectTimeoutMs} ms`,
      where,
      "the host may be down or filtered; raise connectTimeout if it is only slow",
      error,
    );
  }
  if (error.level === "client-authentication") {
    return connectionError(
      "AUTH_FAILED",
      `SSH authentication as ${settings.user} failed on ${target}`,
      where,
      `check that ${settings.privateKeyPath ?? "the agent's key"} is in ${settings.user}'s authorized_keys`,
      error,
    );
  }
  return connectionError(
    "SSH_FAILED",
    `SSH to ${target} failed: ${error.message}`,
    where,
    undefined,
    error,
  );
}

function hostKeyError(
  verdict: HostKeyVerdict,
  settings: SshSettings,
  offeredKey: string,
  where: Where,
): OmensError {
  const offered = offeredKey ? fingerprint(offeredKey) : "unknown";
  const name = settings.port === 22 ? settings.address : `[${settings.address}]:${settings.port}`;
  if (verdict.kind === "unknown") {
    return connectionError(
      "HOST_KEY_UNKNOWN",
      `host key of ${name} (${offered}) is not in ${settings.knownHostsPath}`,
      where,
      `verify the fingerprint out of band, then: ssh-keyscan -p ${settings.port} ${settings.address} >> ${settings.knownHostsPath}`,
    );
  }
  const expected = verdict.kind === "mismatch" ? verdict.expected.join(", ") : "";
  const line = verdict.kind === "mismatch" ? verdict.line : 0;
  return connectionError(
    "HOST_KEY_MISMATCH",
    `host key of ${name} changed: offered ${offered}, known_hosts has ${expected}; refusing to connect`,
    { ...where, file: settings.knownHostsPath, line },
    `only if the new key is expected (verify ${offered} out of band), replace the old one: ${acceptCommand(name, settings)}`,
  );
}

/** The shell commands that drop a host's old key from known_hosts and record its current one. */
function acceptCommand(name: string, settings: SshSettings): string {
  const file = quote(settings.knownHostsPath);
  return `ssh-keygen -R ${quote(name)} -f ${file} && ssh-keyscan -p ${settings.port} ${quote(settings.address)} >> ${file}`;
}

function openChannel(
  client: Client,
  command: string,
  where: Where,
  closedReason: () => OmensError | undefined,
): Promise<RawChannel> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, stream) => {
      if (error) {
        reject(
          closedReason() ??
            connectionError(
              "CHANNEL_FAILED",
              `cannot open SSH channel: ${error.message}`,
              where,
              undefined,
              error,
            ),
        );
        return;
      }
      resolve(toRawChannel(stream, closedReason, where));
    });
  });
}

function toRawChannel(
  stream: ClientChannel,
  closedReason: () => OmensError | undefined,
  where: Where,
): RawChannel {
  let exit: { rc: number | null; signal?: string } = { rc: null };
  const done = new Promise<{ rc: number | null; signal?: string }>((resolve, reject) => {
    stream.on("exit", (code: number | null, signal?: string) => {
      exit = signal ? { rc: code, signal } : { rc: code };
    });
    stream.on("close", () => {
      const lost = closedReason();
      if (exit.rc === null && !exit.signal && lost) reject(lost.at(where));
      else resolve(exit);
    });
  });
  return {
    stdin: stream,
    stdout: stream,
    stderr: stream.stderr,
    done,
    kill: () => stream.close(),
  };
}
