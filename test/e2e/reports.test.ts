import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  hashHostTree,
  hostPath,
  LAB_DIR,
  labInventoryFile,
  omensPlay,
  ROOT,
  sshRoot,
  type LabHost,
  type PlayRun,
} from "../helpers/lab.js";

const inventory = labInventoryFile();
const PROBES = "test/fixtures/runner/reports.ts";
const DRIFT = "test/fixtures/runner/drift.ts";
const reportDir = mkdtempSync(join(tmpdir(), "omens-reports-"));

/** The lines of a plain run from the heading `title` to the next blank line. */
function section(run: PlayRun, title: string): string[] {
  const lines = run.stdout.split("\n");
  const start = lines.indexOf(title);
  if (start < 0) throw new Error(`no ${title} section in:\n${run.stdout}`);
  const end = lines.indexOf("", start);
  return lines.slice(start, end < 0 ? undefined : end);
}

const fileHash = (host: LabHost, path: string) =>
  createHash("sha256")
    .update(readFileSync(hostPath(host, path)))
    .digest("hex");

describe("probes on the lab: one host healthy, one unhealthy for real", () => {
  let plain: PlayRun;
  let json: PlayRun;
  const report = join(reportDir, "health.json");

  beforeAll(async () => {
    sshRoot(
      "auth",
      "rm -rf /srv/omens-reports && mkdir /srv/omens-reports && touch /srv/omens-reports/marker",
    );
    sshRoot("ca", "rm -rf /srv/omens-reports");
    plain = await omensPlay([PROBES, "-i", inventory, "--report", report]);
    json = await omensPlay([PROBES, "-i", inventory, "--json"]);
  });

  it("prints a HEALTH table after the recap, and exits 3 since no task failed", () => {
    expect(plain.code, plain.stderr).toBe(3);
    expect(plain.stdout.indexOf("\nRECAP")).toBeLessThan(plain.stdout.indexOf("\nHEALTH"));
    expect(section(plain, "HEALTH")).toEqual([
      "HEALTH",
      "  host  component  check    status     detail",
      "  auth  sshd       active   ok         active",
      "  auth  marker     present  ok         exit code 0",
      "  ca    sshd       active   ok         active",
      "  ca    marker     present  UNHEALTHY  exit code 1 (general error)",
      "  4 checks, 1 unhealthy",
    ]);
  });

  it("goes on after an unhealthy probe: an ignored failure, and the later tasks ran", () => {
    expect(plain.stdout).toMatch(/probe marker present +ca +failed \(ignored\)/);
    expect(plain.stdout).toContain("unhealthy: marker present: exit code 1 (general error)");
    expect(sshRoot("ca", "cat /srv/omens-reports/after")).toBe("the host went on\n");
    expect(json.recap.ca).toMatchObject({ ignored: 1, failed: 0 });
    expect(json.recap.auth).toMatchObject({ ignored: 0, failed: 0 });
  });

  it("emits one health event per probe and lists them in the recap", () => {
    expect(json.code).toBe(3);
    const health = json.events.filter((e) => e.kind === "health");
    expect(health).toHaveLength(4);
    expect(health.find((e) => e.host === "ca" && e.component === "marker")).toMatchObject({
      check: "present",
      healthy: false,
      detail: "exit code 1 (general error)",
      play: "health",
      task: "probe marker present",
    });
    expect(typeof health[0]?.durationMs).toBe("number");
    const recap = json.events.at(-1) as { kind: string; health?: unknown[] };
    expect(recap.kind).toBe("recap");
    expect(recap.health).toEqual([
      { host: "auth", component: "sshd", check: "active", healthy: true, detail: "active" },
      { host: "auth", component: "marker", check: "present", healthy: true, detail: "exit code 0" },
      { host: "ca", component: "sshd", check: "active", healthy: true, detail: "active" },
      {
        host: "ca",
        component: "marker",
        check: "present",
        healthy: false,
        detail: "exit code 1 (general error)",
      },
    ]);
  });

  it("writes the --report file as one JSON document, with no temp file left", () => {
    const written = JSON.parse(readFileSync(report, "utf8")) as Record<string, unknown>;
    expect(Object.keys(written)).toEqual(["playbook", "check", "hosts", "health", "changes"]);
    expect(written.playbook).toBe("reports");
    expect(written.check).toBe(false);
    // The first run (the one with --report) made the folder and file on ca.
    const counts = { failed: 0, skipped: 0, unreachable: 0, rescued: 0, ignored: 1 };
    expect(written.hosts).toEqual({
      auth: { ...counts, ok: 3, changed: 1, ignored: 0 },
      ca: { ...counts, ok: 1, changed: 2 },
    });
    expect(written.health).toEqual((json.events.at(-1) as { health?: unknown }).health);
    expect(written.changes).toEqual([
      { host: "auth", role: "play: health", tasks: ["copy /srv/omens-reports/after"] },
      {
        host: "ca",
        role: "play: health",
        tasks: ["file /srv/omens-reports", "copy /srv/omens-reports/after"],
      },
    ]);
    expect(readdirSync(reportDir)).toEqual(["health.json"]);
  });
});

describe("drift in check mode: a role's file differs on one host", () => {
  let converge: PlayRun;
  let drift: PlayRun;
  let driftJson: PlayRun;
  let fixed: PlayRun;
  let clean: PlayRun;
  let afterCheck = "";
  const before = new Map<LabHost, string>();
  const after = new Map<LabHost, string>();
  const report = join(reportDir, "drift.json");

  beforeAll(async () => {
    for (const host of ["auth", "ca"] as const) sshRoot(host, "rm -rf /srv/omens-drift");
    converge = await omensPlay([DRIFT, "-i", inventory, "--fail-on-change"]);
    sshRoot("ca", "echo 'a local edit' > /srv/omens-drift/motd");
    for (const host of ["auth", "ca"] as const) before.set(host, hashHostTree(host));
    const motd = fileHash("ca", "/srv/omens-drift/motd");
    drift = await omensPlay([
      DRIFT,
      "-i",
      inventory,
      "--check",
      "--fail-on-change",
      "--report",
      report,
    ]);
    driftJson = await omensPlay([DRIFT, "-i", inventory, "--check", "--json"]);
    for (const host of ["auth", "ca"] as const) after.set(host, hashHostTree(host));
    expect(fileHash("ca", "/srv/omens-drift/motd")).toBe(motd);
    afterCheck = sshRoot("ca", "cat /srv/omens-drift/motd");
    fixed = await omensPlay([DRIFT, "-i", inventory]);
    clean = await omensPlay([DRIFT, "-i", inventory, "--check", "--fail-on-change"]);
  });

  it("a real run that changed something exits 6 with --fail-on-change", () => {
    expect(converge.code, converge.stderr).toBe(6);
  });

  it("the DRIFT section names exactly that host, role and task, and exits 6", () => {
    expect(drift.code, drift.stderr).toBe(6);
    expect(section(drift, "DRIFT (check mode)")).toEqual([
      "DRIFT (check mode)",
      "  auth  no drift",
      "  ca    1 task would change",
      "    drift-demo (1 task)",
      "      drift-demo: copy /srv/omens-drift/motd",
    ]);
  });

  it("task results carry their role, and the recap and report list the change", () => {
    const results = driftJson.events.filter((e) => e.kind === "task-result");
    const motd = results.find(
      (e) => e.host === "ca" && e.task === "drift-demo: copy /srv/omens-drift/motd",
    );
    expect(motd).toMatchObject({ role: "drift-demo", status: "changed", check: true });
    const own = results.find((e) => e.task === "copy /srv/omens-drift/play-owned");
    expect(own).toBeDefined();
    expect(own?.role).toBeUndefined();
    const changes = [
      { host: "ca", role: "drift-demo", tasks: ["drift-demo: copy /srv/omens-drift/motd"] },
    ];
    expect((driftJson.events.at(-1) as { changes?: unknown }).changes).toEqual(changes);
    expect(driftJson.code).toBe(0);
    const written = JSON.parse(readFileSync(report, "utf8")) as Record<string, unknown>;
    expect(written).toMatchObject({ playbook: "drift", check: true, health: [], changes });
  });

  it("--check changes nothing on either host", () => {
    expect(after.get("auth")).toBe(before.get("auth"));
    expect(after.get("ca")).toBe(before.get("ca"));
    expect(afterCheck).toBe("a local edit\n");
  });

  it("after a real run puts the file back, a check run finds no drift and exits 0", () => {
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(sshRoot("ca", "cat /srv/omens-drift/motd")).toBe("managed by the drift-demo role\n");
    expect(clean.code, clean.stderr).toBe(0);
    expect(section(clean, "DRIFT (check mode)")).toEqual([
      "DRIFT (check mode)",
      "  auth  no drift",
      "  ca    no drift",
    ]);
  });
});

describe("probes under --check, and on an unreachable host", () => {
  it("run under --check (exit 3) and the host is left as it was", async () => {
    sshRoot("ca", "rm -rf /srv/omens-reports");
    const run = await omensPlay([PROBES, "-i", inventory, "--check", "--json", "--limit", "ca"]);
    expect(run.code, run.stderr).toBe(3);
    const health = run.events.filter((e) => e.kind === "health");
    expect(health.map((e) => `${String(e.component)}:${String(e.healthy)}`)).toEqual([
      "sshd:true",
      "marker:false",
    ]);
    expect(sshRoot("ca", "test -e /srv/omens-reports && echo there || echo absent")).toBe(
      "absent\n",
    );
  });

  it("lists an unreachable host's probes as unhealthy rows, and exits 4", async () => {
    const closed = labInventoryFile({ hostSettings: { ca: "port: 1" } });
    const retry = join(reportDir, "unreachable.retry");
    const run = await omensPlay([PROBES, "-i", closed, "--json", "--retry-file", retry]);
    expect(run.code, run.stderr).toBe(4);
    const recap = run.events.findLast((e) => e.kind === "recap") as { health?: { host: string }[] };
    expect(recap.health?.filter((r) => r.host === "ca")).toEqual([
      { host: "ca", component: "sshd", check: "active", healthy: false, detail: "unreachable" },
      { host: "ca", component: "marker", check: "present", healthy: false, detail: "unreachable" },
    ]);
    expect(run.recap.ca).toMatchObject({ unreachable: 1 });
  });
});

describe("on a terminal (the live listr2 view, in tmux)", () => {
  const session = `omens-reports-${process.pid}`;
  const tmux = (...args: string[]) => execFileSync("tmux", args, { encoding: "utf8" });
  afterAll(() => {
    try {
      tmux("kill-session", "-t", session);
    } catch {
      // already gone
    }
  });

  it("prints the HEALTH table and the DRIFT section after the recap too", async () => {
    sshRoot("ca", "echo 'edited again' > /srv/omens-drift/motd");
    const play = (args: string) => `./bin/omens-play.js ${args} -i ${inventory}; echo EXIT=$?`;
    const command = `cd ${ROOT} && export LAB_DIR=${LAB_DIR}; ${play(PROBES)}; ${play(`${DRIFT} --check`)}; sleep 60`;
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "80", command);
    let screen = "";
    for (const end = Date.now() + 60_000; Date.now() < end;) {
      screen = tmux("capture-pane", "-p", "-J", "-S", "-300", "-t", session);
      if ((screen.match(/^EXIT=\d+$/gm) ?? []).length === 2) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(screen.match(/^EXIT=\d+$/gm)).toEqual(["EXIT=3", "EXIT=0"]);
    expect(screen).toMatch(
      /^ {2}ca {4}marker {5}present {2}UNHEALTHY {2}exit code 1 \(general error\)$/m,
    );
    expect(screen).toContain("  4 checks, 1 unhealthy");
    expect(screen).toMatch(
      /DRIFT \(check mode\)\n {2}auth {2}no drift\n {2}ca {4}1 task would change\n/,
    );
  });
});
