import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  copy,
  defineRole,
  definePlaybook,
  play,
  probe,
  Type,
  type Playbook,
} from "../../engine/index.js";
import type { ChangeRow, HealthRow, OmensEvent } from "../../engine/events.js";
import { emptyCounts } from "../../engine/events.js";
import { loadInventory } from "../../engine/inventory/load.js";
import { capDetail, defaultDetail, judgeProbe } from "../../engine/modules/probe.js";
import { plainRenderer } from "../../engine/output/plain.js";
import { getDrift, renderDrift, renderHealth } from "../../engine/output/report.js";
import { main } from "../../engine/cli.js";
import { Secret } from "../../engine/secret.js";
import { writeReportFile } from "../../engine/report-file.js";
import { exitCodeFor, preparePlaybook, runPlaybook } from "../../engine/runner/run.js";

const row = (host: string, healthy: boolean, detail: string): HealthRow => ({
  host,
  component: "sshd",
  check: "active",
  healthy,
  detail,
});

describe("the HEALTH table", () => {
  it("aligns every column to its widest cell and ends with the counts", () => {
    const lines = renderHealth([
      row("auth", true, "active"),
      {
        host: "spire.funlab",
        component: "spire-server",
        check: "healthcheck",
        healthy: false,
        detail: "exit code 1 (general error)",
      },
    ]);
    expect(lines).toEqual([
      "HEALTH",
      "  host          component     check        status     detail",
      "  auth          sshd          active       ok         active",
      "  spire.funlab  spire-server  healthcheck  UNHEALTHY  exit code 1 (general error)",
      "  2 checks, 1 unhealthy",
    ]);
  });

  it("paints only the UNHEALTHY status, keeping the columns aligned", () => {
    const paint = (code: number, text: string) => `<${code}>${text}</>`;
    const lines = renderHealth([row("auth", false, "inactive"), row("ca", true, "active")], paint);
    expect(lines[2]).toBe("  auth  sshd       active  <31>UNHEALTHY</>  inactive");
    expect(lines[3]).toBe("  ca    sshd       active  ok         active");
  });
});

describe("the DRIFT section", () => {
  it("names each role's changed tasks per host, and says no drift for the others", () => {
    const changes: ChangeRow[] = [
      { host: "auth", role: "motd", tasks: ["motd: copy /etc/motd", "motd: file /etc/issue"] },
      { host: "auth", role: "play: extras", tasks: ["copy /etc/extra"] },
    ];
    const clean = emptyCounts();
    expect(renderDrift({ spire: clean, auth: clean, ca: clean }, changes)).toEqual([
      "DRIFT (check mode)",
      "  spire  no drift",
      "  auth   3 tasks would change",
      "    motd (2 tasks)",
      "      motd: copy /etc/motd",
      "      motd: file /etc/issue",
      "    play: extras (1 task)",
      "      copy /etc/extra",
      "  ca     no drift",
    ]);
  });

  it("says a failed or unreachable host was not checked, never that it has no drift", () => {
    const hosts = {
      auth: { ...emptyCounts(), ok: 2, failed: 1 },
      ghost: { ...emptyCounts(), unreachable: 1 },
      ca: { ...emptyCounts(), ok: 1, rescued: 1, ignored: 1 },
    };
    const changes: ChangeRow[] = [{ host: "auth", role: "motd", tasks: ["motd: copy /etc/motd"] }];
    expect(renderDrift(hosts, changes)).toEqual([
      "DRIFT (check mode)",
      "  auth   not checked: a task failed (1 task would change before it stopped)",
      "    motd (1 task)",
      "      motd: copy /etc/motd",
      "  ghost  not checked: unreachable",
      "  ca     no drift",
    ]);
    expect(getDrift(hosts, changes)).toEqual([
      { host: "auth", checked: false, reason: "a task failed", wouldChange: 1 },
      { host: "ghost", checked: false, reason: "unreachable", wouldChange: 0 },
      { host: "ca", checked: true, wouldChange: 0 },
    ]);
  });

  it("says no host of an interrupted run was checked, keeping the more specific reason", () => {
    const hosts = {
      auth: { ...emptyCounts(), ok: 2 },
      ghost: { ...emptyCounts(), unreachable: 1 },
    };
    expect(getDrift(hosts, [], true)).toEqual([
      { host: "auth", checked: false, reason: "the run was interrupted", wouldChange: 0 },
      { host: "ghost", checked: false, reason: "unreachable", wouldChange: 0 },
    ]);
  });
});

describe("the plain renderer's end of run", () => {
  const recap = (check: boolean, extra: object): OmensEvent => ({
    kind: "recap",
    hosts: { auth: { ...emptyCounts(), ok: 2 }, ca: { ...emptyCounts(), ok: 1, ignored: 1 } },
    check,
    durationMs: 1200,
    ...extra,
  });
  const render = (event: OmensEvent) => {
    const lines: string[] = [];
    plainRenderer(
      { out: (l) => lines.push(l), err: () => undefined, color: false },
      { showDiff: false },
    )(event);
    return lines.join("\n").split("\n");
  };

  it("prints HEALTH after the RECAP when probes ran, and no DRIFT outside check mode", () => {
    const lines = render(
      recap(false, { health: [row("auth", true, "active"), row("ca", false, "failed")] }),
    );
    const at = (text: string) => lines.findIndex((l) => l.startsWith(text));
    expect(at("RECAP")).toBeLessThan(at("HEALTH"));
    expect(lines.slice(at("HEALTH"))).toEqual([
      "HEALTH",
      "  host  component  check   status     detail",
      "  auth  sshd       active  ok         active",
      "  ca    sshd       active  UNHEALTHY  failed",
      "  2 checks, 1 unhealthy",
    ]);
    expect(lines.some((l) => l.startsWith("DRIFT"))).toBe(false);
  });

  it("prints DRIFT in check mode, also when nothing would change, and no HEALTH without probes", () => {
    const lines = render(recap(true, {}));
    expect(lines.some((l) => l.startsWith("HEALTH"))).toBe(false);
    expect(lines.slice(lines.indexOf("DRIFT (check mode)"))).toEqual([
      "DRIFT (check mode)",
      "  auth  no drift",
      "  ca    no drift",
    ]);
  });
});

describe("the exit code", () => {
  const base = { interrupted: false, failed: [], unreachable: [], health: [], changes: [] };
  const unhealthy = [row("ca", false, "inactive")];
  const changes = [{ host: "ca", role: "motd", tasks: ["motd: copy /etc/motd"] }];

  it("is 0 for a clean run, also with changes unless --fail-on-change", () => {
    expect(exitCodeFor(base)).toBe(0);
    expect(exitCodeFor({ ...base, changes })).toBe(0);
    expect(exitCodeFor({ ...base, health: [row("ca", true, "active")] })).toBe(0);
  });

  it("is 3 for an unhealthy probe, 6 for a change with --fail-on-change", () => {
    expect(exitCodeFor({ ...base, health: unhealthy })).toBe(3);
    expect(exitCodeFor({ ...base, changes }, { failOnChange: true })).toBe(6);
  });

  it("ranks failures, then unreachable hosts, then unhealthy probes, then changes", () => {
    const all = { ...base, failed: ["auth"], unreachable: ["ca"], health: unhealthy, changes };
    const policy = { failOnChange: true };
    expect(exitCodeFor({ ...all, interrupted: true }, policy)).toBe(130);
    expect(exitCodeFor(all, policy)).toBe(2);
    expect(exitCodeFor({ ...all, failed: [] }, policy)).toBe(4);
    expect(exitCodeFor({ ...all, failed: [], unreachable: [] }, policy)).toBe(3);
    expect(exitCodeFor({ ...base, changes }, policy)).toBe(6);
  });
});

describe("a probe's health and detail", () => {
  const output = (rc: number, stdout: string, stderr = "") => ({ rc, stdout, stderr });
  const byRc = { healthy: (o: { rc: number }) => o.rc === 0 };

  it("is healthy on exit code 0 by default, with the last non-empty stdout line as detail", () => {
    expect(judgeProbe(byRc, output(0, "starting\nactive\n\n"))).toEqual({
      healthy: true,
      detail: "active",
    });
  });

  it("prefers stderr when unhealthy, and says the exit code when nothing was printed", () => {
    expect(judgeProbe(byRc, output(3, "inactive\n", "Unit x.service not found.\n"))).toEqual({
      healthy: false,
      detail: "Unit x.service not found.",
    });
    expect(defaultDetail(output(1, ""), false)).toBe("exit code 1 (general error)");
  });

  it("takes its own healthy and detail functions; a throwing one makes it unhealthy", () => {
    const own = {
      healthy: (o: { stdout: string }) => o.stdout.includes("ok"),
      detail: (o: { stdout: string }) => `said ${o.stdout.trim()}`,
    };
    expect(judgeProbe(own, output(1, "ok"))).toEqual({ healthy: true, detail: "said ok" });
    const broken = {
      healthy: () => {
        throw new RangeError("no");
      },
    };
    expect(judgeProbe(broken, output(0, "fine"))).toEqual({
      healthy: false,
      detail: "healthy() threw: RangeError: no",
    });
  });

  it("has typed callbacks and a typed registered result", () => {
    const sshd = probe({
      component: "sshd",
      check: "active",
      argv: ["systemctl", "is-active", "ssh"],
      healthy: (r) => r.rc === 0 && r.stdout.trim() === "active",
      detail: (r) => r.stderr,
    });
    const after = copy({
      dest: "/tmp/x",
      content: "x",
      when: (ctx) => ctx.result(sshd)?.healthy === true && ctx.result(sshd)?.detail !== "",
    });
    expect(after.options.when).toBeTypeOf("function");
    const misuse = { component: "c", check: "k", shell: "true" };
    // @ts-expect-error the output has rc, stdout and stderr only
    expect(probe({ ...misuse, healthy: (r) => r.code === 0 }).module).toBe("probe");
  });

  it("keeps a detail to one line of at most 200 characters", () => {
    expect(capDetail("a\n  b")).toBe("a b");
    const long = capDetail("x".repeat(500));
    expect(long).toHaveLength(200);
    expect(long.endsWith("...")).toBe(true);
  });

  it("rejects both or neither of shell and argv, and changedWhen, when the playbook loads", () => {
    const inventory = localInventory();
    const build = (task: ReturnType<typeof probe>) =>
      preparePlaybook(
        definePlaybook("bad", [play("box1", { tasks: [task] })]),
        inventory,
        "/x/bad.ts",
      );
    expect(() => build(probe({ component: "c", check: "k" }))).toThrow(
      /exactly one of "argv" and "shell"/,
    );
    expect(() =>
      build(probe({ component: "c", check: "k", shell: "true", argv: ["true"] })),
    ).toThrow(/exactly one/);
    expect(() => build(probe({ component: "", check: "k", shell: "true" }))).toThrow(
      /"component" must be/,
    );
    const misuse = { component: "c", check: "k", shell: "true" };
    // @ts-expect-error a probe's health is decided by healthy, not changedWhen
    expect(() => probe({ ...misuse, changedWhen: () => true })).toThrow(/changedWhen/);
  });
});

/**
 * An inventory of two hosts run on this machine through /bin/sh and one whose SSH port on
 * loopback refuses connections (port 1), so it is unreachable at once.
 */
function localInventory() {
  const dir = mkdtempSync(join(tmpdir(), "omens-reports-"));
  const key = join(dir, "key");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
  const file = join(dir, "inventory.yaml");
  writeFileSync(
    file,
    [
      "all:",
      `  vars: { dir: ${dir} }`,
      "  hosts:",
      `    box1: { connection: local, vars: { marker: ${dir}/present } }`,
      `    box2: { connection: local, vars: { marker: ${dir}/missing } }`,
      `    ghost: { address: 127.0.0.1, port: 1, user: root, key: ${key}, knownHosts: ${dir}/known, connectTimeout: 3 }`,
    ].join("\n") + "\n",
  );
  writeFileSync(join(dir, "present"), "here\n");
  return loadInventory(file);
}

const marker = defineRole("marker", {
  vars: Type.Object({ dir: Type.String() }),
  tasks: (vars, { host }) => [copy({ dest: `${vars.dir}/${host}.txt`, content: "marked\n" })],
});

function probePlaybook(): Playbook {
  return definePlaybook("probes", [
    play("all", {
      name: "health",
      roles: [marker()],
      tasks: (vars) => [
        probe({ component: "marker", check: "present", argv: ["test", "-f", String(vars.marker)] }),
        probe({
          component: "echo",
          check: "says",
          shell: "echo first; echo '  last words  '",
          detail: (r) => r.stdout.split("\n")[0] ?? "",
        }),
        copy({
          dest: `${String(vars.dir)}/after-${String(vars.inventoryHostname)}`,
          content: "ran\n",
        }),
      ],
    }),
  ]);
}

async function runProbes(check: boolean) {
  const inventory = localInventory();
  const events: OmensEvent[] = [];
  const plays = preparePlaybook(probePlaybook(), inventory, "/x/probes.ts");
  const result = await runPlaybook(plays, inventory, {
    check,
    diff: false,
    forks: 3,
    forceHandlers: false,
    verbosity: 0,
    sink: (e) => events.push(e),
  });
  const dir = String(inventory.hosts.get("box1")?.vars.dir);
  return { result, events, dir };
}

describe("probes in a run (on this machine, and a refused port)", () => {
  it("report health per host, go on after an unhealthy one, and list unreachable hosts' probes", async () => {
    const { result, events, dir } = await runProbes(false);
    const health = events.filter((e) => e.kind === "health");
    expect(health.find((e) => e.host === "box2" && e.component === "marker")).toMatchObject({
      healthy: false,
      detail: "exit code 1 (general error)",
      play: "health",
      task: "probe marker present",
    });
    expect(result.health).toEqual([
      {
        host: "box1",
        component: "marker",
        check: "present",
        healthy: true,
        detail: "exit code 0",
      },
      { host: "box1", component: "echo", check: "says", healthy: true, detail: "first" },
      {
        host: "box2",
        component: "marker",
        check: "present",
        healthy: false,
        detail: "exit code 1 (general error)",
      },
      { host: "box2", component: "echo", check: "says", healthy: true, detail: "first" },
      {
        host: "ghost",
        component: "marker",
        check: "present",
        healthy: false,
        detail: "unreachable",
      },
      { host: "ghost", component: "echo", check: "says", healthy: false, detail: "unreachable" },
    ]);
    // The unhealthy probe is an ignored failure: the task after it ran.
    expect(result.hosts.box2).toMatchObject({ failed: 0, ignored: 1, changed: 2, ok: 1 });
    expect(existsSync(join(dir, "after-box2"))).toBe(true);
    const failed = events.find(
      (e) => e.kind === "task-result" && e.host === "box2" && e.status === "failed",
    );
    expect(failed).toMatchObject({ ignored: true, task: "probe marker present" });
    expect((failed as { error?: string }).error).toContain(
      "unhealthy: marker present: exit code 1",
    );
    expect(exitCodeFor(result)).toBe(4);
    const recap = events.at(-1) as Extract<OmensEvent, { kind: "recap" }>;
    expect(recap.health).toEqual(result.health);
  });

  it("tags each task result with its role and lists the changes per host and role", async () => {
    const { result, events } = await runProbes(false);
    const copies = events.filter(
      (e) => e.kind === "task-result" && e.host === "box1" && e.status === "changed",
    );
    expect(copies.map((e) => (e as { role?: string }).role)).toEqual(["marker", undefined]);
    expect(result.changes.filter((c) => c.host === "box1")).toEqual([
      {
        host: "box1",
        role: "marker",
        tasks: [expect.stringMatching(/^marker: copy .*box1\.txt$/)],
      },
      { host: "box1", role: "play: health", tasks: [expect.stringMatching(/^copy .*after-box1$/)] },
    ]);
  });

  it("run under --check too, never report changed, and change nothing", async () => {
    const { result, events, dir } = await runProbes(true);
    expect(result.health.filter((r) => r.host !== "ghost").map((r) => r.healthy)).toEqual([
      true,
      true,
      false,
      true,
    ]);
    const probes = events.filter((e) => e.kind === "task-result" && e.task.startsWith("probe"));
    expect(new Set(probes.map((e) => (e as { status: string }).status))).toEqual(
      new Set(["ok", "failed"]),
    );
    expect(existsSync(join(dir, "after-box1"))).toBe(false);
    expect(result.changes.map((c) => `${c.host}/${c.role}`)).toEqual([
      "box1/marker",
      "box1/play: health",
      "box2/marker",
      "box2/play: health",
    ]);
  });
});

describe("the report file", () => {
  it("is written whole, through a temp file in the same folder that is gone afterwards", () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-report-"));
    const file = join(dir, "report.json");
    writeFileSync(file, "old\n");
    const report = {
      playbook: "site",
      check: true,
      hosts: { auth: emptyCounts() },
      health: [row("auth", true, "active")],
      changes: [],
    };
    writeReportFile(file, report);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual(report);
    expect(execFileSync("ls", ["-A", dir], { encoding: "utf8" })).toBe("report.json\n");
  });
});

describe("secrets in health details", () => {
  it("are masked in the HEALTH table and in the report file", () => {
    process.env.OMENS_REPORTS_TOKEN = "tok-7f3a9c2e51";
    Secret.fromEnv("OMENS_REPORTS_TOKEN");
    const rows = [row("auth", false, "login refused for tok-7f3a9c2e51")];
    const lines: string[] = [];
    const recap: OmensEvent = {
      kind: "recap",
      hosts: { auth: emptyCounts() },
      check: false,
      durationMs: 1,
      health: rows,
    };
    plainRenderer(
      { out: (l) => lines.push(l), err: () => undefined, color: false },
      { showDiff: false },
    )(recap);
    const table = lines.join("\n");
    expect(table).toContain("login refused for ********");
    expect(table).not.toContain("tok-7f3a9c2e51");
    const file = join(mkdtempSync(join(tmpdir(), "omens-report-")), "r.json");
    writeReportFile(file, { playbook: "p", check: false, hosts: {}, health: rows, changes: [] });
    expect(readFileSync(file, "utf8")).not.toContain("tok-7f3a9c2e51");
  });
});

describe("--report on the command line", () => {
  it("refuses a folder that does not exist before anything runs (exit 5)", async () => {
    const errors: string[] = [];
    const terminal = { out: () => undefined, err: (l: string) => errors.push(l), color: false };
    const code = await main(
      ["missing-playbook.ts", "--report", "/nonexistent/omens/r.json"],
      terminal,
    );
    expect(code).toBe(5);
    expect(errors.join("\n")).toContain(
      "--report /nonexistent/omens/r.json: the folder /nonexistent/omens does not exist",
    );
  });

  it("is described in the usage text with the new exit codes", async () => {
    const out: string[] = [];
    await main(["--help"], { out: (l) => out.push(l), err: () => undefined, color: false });
    const usage = out.join("\n");
    expect(usage).toContain("--fail-on-change");
    expect(usage).toContain("--report FILE");
    expect(usage).toContain("3 a health probe reported unhealthy");
    expect(usage).toContain("6 changes found (with --check: drift");
  });
});

describe("plain output of notices", () => {
  it("prints a notice as it is, and a warning marked as one, both on stderr", () => {
    const err: string[] = [];
    const sink = plainRenderer(
      { out: () => undefined, err: (l) => err.push(l), color: false },
      { showDiff: false },
    );
    sink({ kind: "notice", message: "statistics: 12 remote commands" });
    sink({ kind: "warning", message: "pattern 'x' matched no hosts" });
    expect(err).toEqual([
      "statistics: 12 remote commands",
      "warning: pattern 'x' matched no hosts",
    ]);
  });
});

describe("JSON Lines output", () => {
  it("ends with the recap even when notices follow it (retry file, statistics)", async () => {
    const { jsonRenderer } = await import("../../engine/output/json.js");
    const lines: string[] = [];
    const sink = jsonRenderer({
      out: (l: string) => void lines.push(l),
      err: () => undefined,
      tty: false,
      color: false,
    });
    sink({ kind: "warning", message: "before" });
    sink({ kind: "recap", hosts: {}, check: false, durationMs: 1 });
    sink({ kind: "warning", message: "failed and unreachable hosts listed in x.retry" });
    await sink.close();
    expect(
      lines.map((l) => (JSON.parse(l) as { kind: string; message?: string }).message ?? "recap"),
    ).toEqual(["before", "failed and unreachable hosts listed in x.retry", "recap"]);
  });
});
