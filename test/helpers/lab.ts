import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** The project root. */
export const ROOT = resolve(import.meta.dirname, "../..");

/**
 * Takes the lab down and brings it up again: three hosts as the rootfs made them (about 10 s
 * with the rootfs cached). Test files that move the stack past sprint 2 (migrated agents, a
 * hardened sshd) start and end with it, so the files around them find the lab they expect.
 */
export function rebuildLab(): void {
  const script = join(ROOT, "test/lab/lab-up.sh");
  execFileSync("bash", [script, "down"], { stdio: "ignore" });
  execFileSync("bash", [script, "up"], { stdio: "ignore" });
}
export const LAB_DIR = process.env.LAB_DIR ?? "/var/tmp/omens-lab";
export const LAB_HOSTS = ["spire", "auth", "ca"] as const;
export type LabHost = (typeof LAB_HOSTS)[number];

/** What test/lab/lab-up.sh writes to $LAB_DIR/lab.json. */
export interface LabInfo {
  hosts: Record<LabHost, { address: string; netns: string; root: string; tcti: string }>;
  key: string;
  knownHosts: string;
  tpmCa: { issuer: string; root: string; bundle: string };
  sudoPasswordFile: string;
}

/** The running lab; fails loudly (never skips) when it is not up. */
export function lab(): LabInfo {
  const file = join(LAB_DIR, "lab.json");
  if (!existsSync(file))
    throw new Error(`the lab is not up (${file} is missing): run npm run lab:up`);
  return JSON.parse(readFileSync(file, "utf8")) as LabInfo;
}

/** OpenSSH client arguments for a lab host: the lab's key and strict host-key checking. */
export function sshArgs(host: LabHost, options: { user?: string; key?: string } = {}): string[] {
  const info = lab();
  return [
    "-i",
    options.key ?? info.key,
    "-o",
    `UserKnownHostsFile=${info.knownHosts}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=5",
    ...(options.key ? ["-o", "IdentitiesOnly=yes"] : []),
    `${options.user ?? "root"}@${info.hosts[host].address}`,
  ];
}

/** Runs a command as root on a lab host through real SSH (OpenSSH client, lab key). */
export function sshRoot(host: LabHost, command: string): string {
  return execFileSync("ssh", [...sshArgs(host), command], { encoding: "utf8" });
}

/** The outcome of a command run with `sshRun`. */
export interface SshRun {
  code: number;
  out: string;
  err: string;
}

/** Runs a command as root on a lab host; never throws, so exit codes can be asserted. */
export function sshRun(host: LabHost, command: string, input?: string): SshRun {
  const r = spawnSync("ssh", [...sshArgs(host), command], { input, encoding: "utf8" });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Runs a command as root on a lab host that must succeed; returns its stdout. */
export function sshOk(host: LabHost, command: string, input?: string): string {
  const r = sshRun(host, command, input);
  if (r.code !== 0) throw new Error(`${host}: ${command} exited ${r.code}\n${r.err}${r.out}`);
  return r.out;
}

/** Writes a file on a lab host over SSH, making its folder, with the given mode. */
export function sshPut(host: LabHost, path: string, content: string, mode = "0644"): void {
  sshOk(host, `mkdir -p "$(dirname ${path})" && cat > ${path} && chmod ${mode} ${path}`, content);
}

/** Polls `probe` every `intervalMs` until it returns a value; gives up after `seconds`. */
export async function waitUntil<T>(
  what: string,
  probe: () => T | undefined,
  seconds = 30,
  intervalMs = 500,
): Promise<T> {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A path inside a lab host's root filesystem, as seen from the machine. */
export function hostPath(host: LabHost, path: string): string {
  return join(lab().hosts[host].root, path);
}

/** The result of one omens-play run. */
export interface PlayRun {
  code: number;
  stdout: string;
  stderr: string;
  /** JSON Lines events, when run with --json. */
  events: Record<string, unknown>[];
  recap: Record<
    string,
    {
      ok: number;
      changed: number;
      failed: number;
      skipped: number;
      unreachable: number;
      rescued: number;
      ignored: number;
    }
  >;
}

/** Runs the real CLI (bin/omens-play.js) as a user would. */
export function omensPlay(args: string[], env: Record<string, string> = {}): Promise<PlayRun> {
  return omensPlayWith([], args, env);
}

/**
 * Runs the real CLI under a wrapper command, e.g. `["setpriv", "--reuid=nobody", ...]` to be
 * another controller user, or `["script", ...]` to have a terminal.
 */
export function omensPlayWith(
  wrapper: string[],
  args: string[],
  env: Record<string, string> = {},
  stdin?: string,
): Promise<PlayRun> {
  return new Promise((done) => {
    const command = [...wrapper, process.execPath, join(ROOT, "bin/omens-play.js"), ...args];
    const child = spawn(command[0] as string, command.slice(1), {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", ...env },
    });
    if (stdin !== undefined) child.stdin.end(stdin);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => {
      const events = stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const recapEvent = events.findLast((e) => e.kind === "recap") as
        { hosts?: PlayRun["recap"] } | undefined;
      done({ code: code ?? -1, stdout, stderr, events, recap: recapEvent?.hosts ?? {} });
    });
  });
}

/** Task results of a JSON run, optionally for one host. */
export function results(run: PlayRun, host?: string) {
  return run.events.filter((e) => e.kind === "task-result" && (!host || e.host === host)) as {
    task: string;
    host: string;
    status: string;
    reason?: string;
    error?: string;
    diff?: unknown[];
  }[];
}

// Paths that change on their own (journal, logins, runtime state) and say nothing about a play.
const VOLATILE = [
  "/proc",
  "/sys",
  "/dev",
  "/run",
  "/tmp",
  "/var/log",
  "/var/tmp",
  "/var/lib/systemd",
  "/var/cache",
];

/**
 * A hash of every file, folder and link a host has changed from its base image (the overlay's
 * upper folder), with paths, modes, owners and contents. Equal hashes: nothing changed.
 */
export function hashHostTree(host: LabHost): string {
  const upper = join(LAB_DIR, "hosts", host, "upper");
  const base = existsSync(upper) ? upper : lab().hosts[host].root;
  const hash = createHash("sha256");
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const relPath = `${rel}/${name}`;
      if (VOLATILE.some((v) => relPath === v || relPath.startsWith(v + "/"))) continue;
      const st = lstatSync(path);
      hash.update(`${relPath} ${st.mode} ${st.uid} ${st.gid}\n`);
      if (st.isSymbolicLink()) hash.update(readlinkSync(path));
      else if (st.isFile()) hash.update(readFileSync(path));
      else if (st.isDirectory()) walk(path, relPath);
    }
  };
  walk(base, "");
  return hash.digest("hex");
}

/**
 * Writes an inventory for the running lab (from lab.json, so a second lab with another
 * LAB_DIR works too). `extra` adds YAML under `all.children` (indented by the caller).
 */
export function labInventoryFile(
  options: {
    vars?: Record<string, unknown>;
    hostSettings?: Partial<Record<LabHost, string>>;
    extraChildren?: string;
  } = {},
): string {
  const info = lab();
  const vars = {
    trustDomain: "funlab.casa",
    tpmTcti: "swtpm:host=127.0.0.1,port=2321",
    ekCaBundle: info.tpmCa.bundle,
    ...options.vars,
  };
  const host = (h: LabHost) =>
    `        ${h}: { address: ${info.hosts[h].address}${options.hostSettings?.[h] ? `, ${options.hostSettings[h]}` : ""} }`;
  const text = [
    "all:",
    "  user: root",
    `  key: ${info.key}`,
    `  knownHosts: ${info.knownHosts}`,
    "  connectTimeout: 5",
    `  vars: ${JSON.stringify(vars)}`,
    "  children:",
    "    servers:",
    "      hosts:",
    host("spire"),
    "    agents:",
    "      hosts:",
    host("auth"),
    host("ca"),
    options.extraChildren ?? "",
  ].join("\n");
  const dir = mkdtempSync(join(tmpdir(), "omens-inv-"));
  const file = join(dir, "lab.yaml");
  writeFileSync(file, text + "\n");
  return file;
}

/**
 * `inventory/lab.yaml` for the running lab. For the default lab that is the file itself; a lab
 * made with another LAB_DIR or LAB_NET (parallel labs) gets a copy with its own addresses and
 * paths, so every test can use the shipped inventory whichever lab it runs against.
 */
export function labInventory(): string {
  const info = lab();
  const net = info.hosts.spire.address.split(".").slice(0, 3).join(".");
  const shipped = join(ROOT, "inventory/lab.yaml");
  if (LAB_DIR === "/var/tmp/omens-lab" && net === "10.77.0") return shipped;
  const text = readFileSync(shipped, "utf8")
    .replaceAll("/var/tmp/omens-lab/", `${LAB_DIR}/`)
    .replaceAll("10.77.0.", `${net}.`);
  const file = join(mkdtempSync(join(tmpdir(), "omens-inv-")), "lab.yaml");
  writeFileSync(file, text);
  return file;
}
