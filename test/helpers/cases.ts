import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { hostPath, labInventory, omensPlay, type LabHost, type PlayRun } from "./lab.js";

/** Files of one case on one lab host, written and read through the host's root filesystem. */
export class CaseFiles {
  constructor(
    readonly host: LabHost,
    readonly dir: string,
  ) {}

  /** Empties the case's folder on the host. */
  reset(files: Record<string, string> = {}): void {
    rmSync(hostPath(this.host, this.dir), { recursive: true, force: true });
    mkdirSync(hostPath(this.host, this.dir), { recursive: true });
    for (const [name, content] of Object.entries(files)) this.write(name, content);
  }

  write(name: string, content: string): void {
    const path = hostPath(this.host, `${this.dir}/${name}`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }

  read(name: string): string {
    return readFileSync(hostPath(this.host, `${this.dir}/${name}`), "utf8");
  }

  readAll(names: string[]): Record<string, string> {
    return Object.fromEntries(names.map((n) => [n, this.read(n)]));
  }
}

/** Runs a case's playbook against the lab inventory with --json and extra flags. */
export function runCase(
  playbook: string,
  env: Record<string, string>,
  ...flags: string[]
): Promise<PlayRun> {
  return omensPlay([playbook, "-i", labInventory(), "--json", ...flags], env);
}

/** task name -> status for one host of a run. */
export function statuses(run: PlayRun, host: string): Record<string, string> {
  return Object.fromEntries(
    run.events
      .filter((e) => e.kind === "task-result" && e.host === host)
      .map((e) => [String(e.task), String(e.status)]),
  );
}
