import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { labNet } from "./conn.js";
import { hostPath, lab, LAB_DIR, ROOT, sshRoot, type LabHost, type PlayRun } from "./lab.js";

/** A running omens-play, so a test can act on the lab (or signal the CLI) while it runs. */
export interface LiveRun {
  child: ChildProcess;
  /** Output so far. */
  stdout: () => string;
  done: Promise<PlayRun & { signal: NodeJS.Signals | null }>;
}

/** Starts the real CLI (bin/omens-play.js) and returns at once. */
export function startPlay(args: string[], env: Record<string, string> = {}): LiveRun {
  const child = spawn(process.execPath, [join(ROOT, "bin/omens-play.js"), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise<PlayRun & { signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => {
      const events = stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const recap = events.findLast((e) => e.kind === "recap") as
        { hosts?: PlayRun["recap"] } | undefined;
      resolve({ code: code ?? -1, signal, stdout, stderr, events, recap: recap?.hosts ?? {} });
    }),
  );
  return { child, stdout: () => stdout, done };
}

/** Waits until `ready()` holds, polling every 20 ms; throws after `ms`. */
export async function waitUntil(ready: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The engine's temp files (`.omens.*`) in a folder of a lab host, seen from the machine. */
export function tempFiles(host: LabHost, dir: string): string[] {
  try {
    return readdirSync(hostPath(host, dir)).filter((n) => n.startsWith(".omens"));
  } catch {
    return [];
  }
}

/** Size of the largest engine temp file in a folder of a lab host (0 when there is none). */
export function largestTempFile(host: LabHost, dir: string): number {
  const sizes = tempFiles(host, dir).map((n) => {
    try {
      return statSync(hostPath(host, `${dir}/${n}`)).size;
    } catch {
      return 0;
    }
  });
  return Math.max(0, ...sizes);
}

/** sha256 of a file on a lab host, read over SSH (sees mounts made inside the host). */
export function remoteSha256(host: LabHost, path: string): string {
  return sshRoot(host, `sha256sum -- '${path}' | cut -d' ' -f1`).trim();
}

/** Runs a lab-up.sh fault command (`tpm-stop`, `tpm-start`, ...) on a host of this lab. */
export function labTool(command: string, host: LabHost): void {
  const prefix = lab().hosts.spire.netns.replace(/-spire$/, "");
  execFileSync("test/lab/lab-up.sh", [command, host], {
    cwd: ROOT,
    env: { ...process.env, LAB_DIR, LAB_PREFIX: prefix, LAB_NET: labNet() },
    stdio: "ignore",
  });
}
