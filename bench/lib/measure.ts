// Timing one engine run: wall clock, CPU of the controller's process tree, peak memory, and the
// recap each engine prints, read the same way for both.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** What one timed run cost and reported. */
export interface Measured {
  wallS: number;
  /** User + system CPU seconds of the engine and every child it waited for. */
  cpuS: number;
  /** Largest resident set of any process in the tree, in MB. */
  maxRssMb: number;
  rc: number;
  /** Per host: ok, changed, failed, skipped, unreachable. */
  recap: Map<string, Record<string, number>>;
  log: string;
}

/** Runs a command under GNU time, its output into `logFile`. */
export async function timed(
  argv: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; logFile: string },
): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), "omens-bench-time-"));
  const report = join(dir, "time");
  const started = process.hrtime.bigint();
  const { rc, output } = await run(
    ["/usr/bin/time", "-o", report, "-f", "%U %S %M", ...argv],
    options,
  );
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const [user, sys, rss] = (readFileSync(report, "utf8").trim().split("\n").pop() ?? "")
    .split(" ")
    .map(Number);
  rmSync(dir, { recursive: true, force: true });
  writeFileSync(options.logFile, output);
  return {
    wallS,
    cpuS: (user ?? NaN) + (sys ?? NaN),
    maxRssMb: (rss ?? NaN) / 1024,
    rc,
    recap: parseRecap(output),
    log: output,
  };
}

function run(
  argv: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ rc: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({ rc: code ?? -1, output: Buffer.concat(chunks).toString("utf8") }),
    );
  });
}

/** Reads "host ... ok=N changed=N ..." recap lines, the format both engines print. */
export function parseRecap(output: string): Map<string, Record<string, number>> {
  const recap = new Map<string, Record<string, number>>();
  const start = Math.max(output.lastIndexOf("PLAY RECAP"), output.lastIndexOf("\nRECAP"));
  if (start < 0) return recap;
  for (const line of output.slice(start).split("\n")) {
    const match = /^\s*(\S+?)\s*:?\s+(ok=\d+.*)$/.exec(line);
    if (!match) continue;
    const counts: Record<string, number> = {};
    for (const pair of (match[2] as string).trim().split(/\s+/)) {
      const [key, value] = pair.split("=");
      if (key && value !== undefined) counts[key] = Number(value);
    }
    recap.set(match[1] as string, counts);
  }
  return recap;
}

/** CPU seconds used so far by a live process (user + system), 0 when it is gone. */
export function processCpuSeconds(pid: number, ticks: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) / ticks;
  } catch {
    return 0;
  }
}

/**
 * Closes the OpenSSH ControlMasters whose sockets are in `dir` and returns the CPU they used:
 * they are detached from the engine, so GNU time does not count them.
 */
export function closeMasters(dir: string, ticks: number): number {
  let cpu = 0;
  for (const name of readdirSync(dir)) {
    const socket = join(dir, name);
    const check = spawnSync("ssh", ["-o", `ControlPath=${socket}`, "-O", "check", "x"]);
    const pid = /pid=(\d+)/.exec(String(check.stderr))?.[1];
    if (pid) cpu += processCpuSeconds(Number(pid), ticks);
    spawnSync("ssh", ["-o", `ControlPath=${socket}`, "-O", "exit", "x"]);
  }
  return cpu;
}

/** The median of some numbers (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return NaN;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
