import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lab, LAB_DIR, omensPlay, type LabHost, type PlayRun } from "./lab.js";

/** The lab's /24 as its first three octets, e.g. "10.77.0", read from lab.json. */
export function labNet(): string {
  return lab().hosts.spire.address.split(".").slice(0, 3).join(".");
}

/** The root namespace's veth into the lab: `<LAB_PREFIX>-lab0`, the prefix read from lab.json. */
export function labVeth(): string {
  return `${lab().hosts.spire.netns.replace(/-spire$/, "")}-lab0`;
}

/** An address inside the lab's /24 that no host uses. */
export function unusedLabAddress(): string {
  return `${labNet()}.99`;
}

/** Writes an inventory file from YAML lines and returns its path. */
export function inventoryFile(lines: string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), "omens-conn-")), "inventory.yaml");
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

/** The connection settings every lab host shares, as YAML lines under `all:`. */
export function labConnectionLines(connectTimeout = 5): string[] {
  const info = lab();
  return [
    `  key: ${info.key}`,
    `  knownHosts: ${info.knownHosts}`,
    `  connectTimeout: ${connectTimeout}`,
  ];
}

/** A run of the real CLI with its wall-clock duration. */
export async function timedPlay(
  args: string[],
  env: Record<string, string> = {},
): Promise<PlayRun & { ms: number }> {
  const started = Date.now();
  const run = await omensPlay(args, env);
  return { ...run, ms: Date.now() - started };
}

/** Takes a lab host's link down (`lab-up.sh net-down`) or up again, in the lab of LAB_DIR. */
export function setLink(host: LabHost, state: "up" | "down"): void {
  const prefix = lab().hosts.spire.netns.replace(/-spire$/, "");
  execFileSync("test/lab/lab-up.sh", [`net-${state}`, host], {
    env: { ...process.env, LAB_DIR, LAB_PREFIX: prefix, LAB_NET: labNet() },
    stdio: "ignore",
  });
}
