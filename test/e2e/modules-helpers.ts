import { lab, labInventory, omensPlay, results, sshRoot, type LabHost } from "../helpers/lab.js";

/** One task for test/fixtures/modules/tasks-from-env.ts: a module and its arguments. */
export interface FixtureTask {
  module: string;
  args: Record<string, unknown>;
}

/** Runs the given tasks on `hosts` through the real CLI with --json, plus extra flags. */
export async function playTasks(tasks: FixtureTask[], flags: string[] = [], hosts = "auth") {
  const run = await omensPlay(
    ["test/fixtures/modules/tasks-from-env.ts", "-i", labInventory(), "--json", ...flags],
    { OMENS_FIXTURE_TASKS: JSON.stringify(tasks), OMENS_FIXTURE_HOSTS: hosts },
  );
  return { ...run, results: results(run) };
}

/** Serves `dir` on `host` with python's http.server at the host's lab address (a systemd unit). */
export function serveHttp(host: LabHost, dir: string, port: number): string {
  const address = lab().hosts[host].address;
  const unit = `omens-test-http-${port}`;
  sshRoot(
    host,
    `systemctl stop ${unit} 2>/dev/null; systemctl reset-failed ${unit} 2>/dev/null; ` +
      `systemd-run --unit ${unit} python3 -m http.server ${port} --bind ${address} --directory ${dir} && ` +
      `for i in $(seq 50); do curl -s -o /dev/null http://${address}:${port}/ && exit 0; sleep 0.1; done; exit 1`,
  );
  return `http://${address}:${port}`;
}

/** Stops a server started by serveHttp. */
export function stopHttp(host: LabHost, port: number): void {
  sshRoot(host, `systemctl stop omens-test-http-${port} 2>/dev/null || true`);
}
