// A private sshd on 127.0.0.1 that every benchmark host shares: its own keys, config and pid
// file in one folder, key-only root login, nothing shared with the machine's own sshd.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** How to reach the benchmark sshd. */
export interface Sshd {
  dir: string;
  port: number;
  /** The client's private key, accepted by the sshd. */
  key: string;
  /** A known_hosts file holding the sshd's host key. */
  knownHosts: string;
  pid: number;
  /** Whether this process started it (and so stops it at the end). */
  startedHere: boolean;
}

/** Starts the sshd unless it already runs from this folder; refuses a port someone else holds. */
export function startSshd(dir: string, port: number): Sshd {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = join(dir, "client_ed25519");
  const hostKey = join(dir, "host_ed25519");
  for (const file of [key, hostKey]) {
    if (!existsSync(file))
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]);
  }
  writeFileSync(join(dir, "authorized_keys"), readFileSync(`${key}.pub`));
  const knownHosts = join(dir, "known_hosts");
  const hostPub = readFileSync(`${hostKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ");
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPub}\n`);
  const running = runningPid(dir);
  if (running !== undefined)
    return { dir, port, key, knownHosts, pid: running, startedHere: false };
  if (portInUse(port))
    throw new Error(`port ${port} is in use on this machine; pick a free one with BENCH_SSH_PORT`);
  writeFileSync(join(dir, "sshd_config"), config(dir, port, hostKey));
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const sshd = spawnSync("/usr/sbin/sshd", [
    "-f",
    join(dir, "sshd_config"),
    "-E",
    join(dir, "log"),
  ]);
  if (sshd.status !== 0)
    throw new Error(`sshd did not start: ${sshd.error?.message ?? String(sshd.stderr)}`);
  const pid = waitForPid(dir);
  return { dir, port, key, knownHosts, pid, startedHere: true };
}

/** Stops the sshd whose pid file is in its folder, and nothing else. */
export function stopSshd(sshd: Sshd): void {
  if (runningPid(sshd.dir) !== sshd.pid) return;
  process.kill(sshd.pid, "SIGTERM");
  rmSync(join(sshd.dir, "sshd.pid"), { force: true });
}

/** CPU seconds the sshd's finished sessions used (every remote shell and program). */
export function targetCpuSeconds(sshd: Sshd): number {
  const fields = readFileSync(`/proc/${sshd.pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  // cutime and cstime are fields 16 and 17 of /proc/PID/stat; this list starts at field 3.
  return (Number(fields[13]) + Number(fields[14])) / clockTicks();
}

/** Waits until the sshd has no session process left, so their CPU is counted. */
export async function waitSessionsClosed(sshd: Sshd): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    const children = spawnSync("pgrep", ["-P", String(sshd.pid)]);
    if (children.status !== 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let ticks: number | undefined;
function clockTicks(): number {
  ticks ??= Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());
  return ticks;
}

function runningPid(dir: string): number | undefined {
  const file = join(dir, "sshd.pid");
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim());
  const cmdline = existsSync(`/proc/${pid}/cmdline`)
    ? readFileSync(`/proc/${pid}/cmdline`, "utf8")
    : "";
  return cmdline.includes(join(dir, "sshd_config")) ? pid : undefined;
}

function portInUse(port: number): boolean {
  const out = spawnSync("ss", ["-Hltn", `sport = :${port}`]).stdout.toString();
  return out.trim() !== "";
}

function waitForPid(dir: string): number {
  for (let i = 0; i < 100; i += 1) {
    const pid = runningPid(dir);
    if (pid !== undefined) return pid;
    spawnSync("sleep", ["0.05"]);
  }
  throw new Error(`sshd wrote no pid file; see ${join(dir, "log")}`);
}

// SetEnv SHLVL=1: root's login shell then skips ~/.bashrc for SSH commands. On these machines
// it runs a slow init (~130 ms per command) that belongs to the image, not to either engine.
function config(dir: string, port: number, hostKey: string): string {
  return `Port ${port}
ListenAddress 127.0.0.1
HostKey ${hostKey}
PidFile ${join(dir, "sshd.pid")}
AuthorizedKeysFile ${join(dir, "authorized_keys")}
AllowUsers root
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 200
UseDNS no
PrintMotd no
X11Forwarding no
SetEnv SHLVL=1
Subsystem sftp /usr/lib/openssh/sftp-server
`;
}
