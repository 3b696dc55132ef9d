// The side-by-side benchmark: Ansible and Omens run the same workload against the same hosts,
// with the same resets and the same end-state check, alternating, and a table of medians.
//
//   npm run bench                  first run, idempotent re-run, check+diff; 3 hosts
//   npm run bench -- --scale       3, 10, 30, 100 hosts at forks 10 and 50
//
// Environment: BENCH_REPS (3), BENCH_SSH_PORT (2222), BENCH_DIR (/tmp/omens-perf), BENCH_ROOT_BASE
// ($BENCH_DIR/hosts; /tmp/omens-bench also checks the trees against workload/expected/),
// BENCH_SCALE_HOSTS ("3 10 30 100"), BENCH_SCALE_ANSIBLE_MAX (10), BENCH_ENGINES ("ansible omens").
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ansibleInventory,
  fleet,
  manifest,
  omensInventory,
  resetRoots,
  type BenchHost,
} from "./lib/fleet.js";
import { closeMasters, median, timed, type Measured } from "./lib/measure.js";
import {
  startSshd,
  stopSshd,
  targetCpuSeconds,
  waitSessionsClosed,
  type Sshd,
} from "./lib/sshd.js";

type Engine = "ansible" | "omens";
type Scenario = "first" | "second" | "check";

const BENCH = dirname(fileURLToPath(import.meta.url));
const PROJECT = dirname(BENCH);
const WORK = process.env.BENCH_DIR ?? "/tmp/omens-perf";
// The recorded trees of workload/expected/ hold hashes of files that name this root base.
const EXPECTED_BASE = "/tmp/omens-bench";
const ROOTS = process.env.BENCH_ROOT_BASE ?? join(WORK, "hosts");
const REPS = Number(process.env.BENCH_REPS ?? 3);
const ENGINES = (process.env.BENCH_ENGINES ?? "ansible omens").split(/\s+/) as Engine[];
const TICKS = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());
const SCENARIOS: Record<Scenario, string> = {
  first: "(a) first run, empty roots",
  second: "(b) idempotent re-run",
  check: "(c) --check --diff, empty roots",
};

/** One timed run, with what both engines are judged on. */
interface Run extends Measured {
  engine: Engine;
  scenario: Scenario;
  /** CPU of the target side (sshd sessions, shells, remote programs). */
  targetCpuS: number;
  load: number;
}

async function main() {
  const scale = process.argv.includes("--scale");
  ensureTools();
  const port = Number(process.env.BENCH_SSH_PORT ?? 2222);
  const sshd = startSshd(join(WORK, "sshd"), port);
  try {
    if (scale) await scaling(sshd);
    else await sideBySide(sshd);
  } finally {
    if (sshd.startedHere) stopSshd(sshd);
  }
}

async function sideBySide(sshd: Sshd) {
  const hosts = fleet(3, ROOTS);
  const setup = prepare(sshd, hosts, "side");
  const started = new Date();
  const loads: number[] = [loadavg()[0] as number];
  const startup = await startupTable(setup);
  const commands = await statistics(setup, hosts);
  const runs: Run[] = [];
  for (let rep = 1; rep <= REPS; rep += 1) {
    const order = rep % 2 === 1 ? ENGINES : [...ENGINES].reverse();
    for (const engine of order) runs.push(...(await workload(setup, engine, hosts, 5, rep)));
    loads.push(loadavg()[0] as number);
  }
  const table = sideBySideTable(runs, commands);
  const header = describeRun(started, loads, `BENCH_REPS=${REPS} npm run bench`);
  print(setup.results, [header, "", table, "", startup].join("\n"));
}

/** The three scenarios for one engine: reset, first run, manifest check, re-run, check mode. */
async function workload(
  setup: Setup,
  engine: Engine,
  hosts: BenchHost[],
  forks: number,
  rep: number,
  scenarios: Scenario[] = ["first", "second", "check"],
): Promise<Run[]> {
  const runs: Run[] = [];
  for (const scenario of scenarios) {
    if (scenario !== "second") resetRoots(hosts);
    const run = await timedRun(setup, engine, scenario, hosts, forks, `${rep}`);
    judge(run, hosts);
    if (scenario === "first") checkEndState(setup, engine, hosts);
    if (scenario === "check") checkNothingWritten(hosts, engine);
    runs.push(run);
  }
  return runs;
}

interface Setup {
  sshd: Sshd;
  results: string;
  inventories: Record<Engine, string>;
  /** The first manifest recorded, per host: every later first run must leave the same tree. */
  reference: Map<string, { engine: string; lines: string[] }>;
}

function prepare(sshd: Sshd, hosts: BenchHost[], label: string): Setup {
  const stamp = new Date().toISOString().replace(/[:.]/g, "").slice(0, 15);
  const results = join(BENCH, "results", `${stamp}-${label}-${hosts.length}`);
  mkdirSync(join(results, "logs"), { recursive: true });
  const inventories = {
    ansible: join(results, "ansible-inventory.yml"),
    omens: join(results, "omens-inventory.yml"),
  };
  ansibleInventory(inventories.ansible, hosts, sshd);
  omensInventory(inventories.omens, hosts, sshd);
  return { sshd, results, inventories, reference: new Map() };
}

async function timedRun(
  setup: Setup,
  engine: Engine,
  scenario: Scenario,
  hosts: BenchHost[],
  forks: number,
  tag: string,
  verbose = false,
): Promise<Run> {
  const flags = scenario === "check" ? ["--check", "--diff"] : [];
  const logFile = join(
    setup.results,
    "logs",
    `${engine}-${scenario}-${hosts.length}-f${forks}-${tag}.log`,
  );
  const load = loadavg()[0] as number;
  const target0 = targetCpuSeconds(setup.sshd);
  let measured: Measured;
  let masterCpu = 0;
  if (engine === "ansible") {
    const controlDir = mkdtempSync("/tmp/omens-bench-cp-");
    measured = await timed(
      [
        "ansible-playbook",
        "-i",
        setup.inventories.ansible,
        "-f",
        String(forks),
        ...flags,
        "site.yml",
      ],
      { cwd: join(BENCH, "ansible"), env: ansibleEnv(controlDir), logFile },
    );
    masterCpu = closeMasters(controlDir, TICKS);
    rmSync(controlDir, { recursive: true, force: true });
  } else {
    const argv = [
      process.execPath,
      join(PROJECT, "bin", "omens-play.js"),
      join(BENCH, "omens", "site.ts"),
      "-i",
      setup.inventories.omens,
      "-f",
      String(forks),
      ...flags,
      ...(verbose ? ["-v"] : []),
    ];
    measured = await timed(argv, {
      cwd: PROJECT,
      env: { ...process.env, OMENS_PLAIN: "1", NO_COLOR: "1" },
      logFile,
    });
  }
  await waitSessionsClosed(setup.sshd);
  const targetCpuS = targetCpuSeconds(setup.sshd) - target0;
  const run = { ...measured, cpuS: measured.cpuS + masterCpu, engine, scenario, targetCpuS, load };
  log(
    `${engine} ${scenario} hosts=${hosts.length} forks=${forks} #${tag}: ${run.wallS.toFixed(2)} s, cpu ${run.cpuS.toFixed(2)} s, ${run.maxRssMb.toFixed(0)} MB, load ${load.toFixed(2)}`,
  );
  return run;
}

function ansibleEnv(controlDir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ANSIBLE_CONFIG: join(BENCH, "ansible", "ansible.cfg"),
    ANSIBLE_SSH_CONTROL_PATH_DIR: controlDir,
    ANSIBLE_NOCOLOR: "1",
    ANSIBLE_RETRY_FILES_ENABLED: "0",
  };
}

/** Fails loudly unless the run succeeded on every host with the expected kind of result. */
function judge(run: Run, hosts: BenchHost[]) {
  const problems: string[] = [];
  if (run.rc !== 0) problems.push(`exit code ${run.rc}`);
  for (const host of hosts) {
    const counts = run.recap.get(host.name);
    if (!counts) {
      problems.push(`${host.name} missing from the recap`);
      continue;
    }
    if (counts.failed || counts.unreachable)
      problems.push(`${host.name}: ${JSON.stringify(counts)}`);
    const changed = counts.changed ?? 0;
    if (run.scenario === "second" && changed !== 0)
      problems.push(`${host.name}: changed=${changed} on the idempotent re-run`);
    if (run.scenario !== "second" && changed === 0)
      problems.push(`${host.name}: nothing changed on a ${run.scenario} run`);
  }
  if (problems.length > 0)
    fail(`${run.engine} ${run.scenario} run: ${problems.join("; ")}`, run.log);
}

/** Every first run, of either engine, must leave byte-identical trees on every host. */
function checkEndState(setup: Setup, engine: Engine, hosts: BenchHost[]) {
  for (const host of hosts) {
    const lines = manifest(host.root);
    const file = join(setup.results, `manifest-${engine}-${host.name}.tsv`);
    writeFileSync(file, lines.join("\n") + "\n");
    const reference = setup.reference.get(host.name) ?? recorded(host);
    if (!reference) {
      setup.reference.set(host.name, { engine, lines });
      continue;
    }
    const a = new Set(reference.lines);
    const b = new Set(lines);
    const missing = reference.lines.filter((l) => !b.has(l));
    const extra = lines.filter((l) => !a.has(l));
    if (missing.length > 0 || extra.length > 0) {
      fail(
        `END STATE DIFFERS on ${host.name}: ${engine} vs ${reference.engine}\n` +
          missing.map((l) => `  only ${reference.engine}: ${l}`).join("\n") +
          "\n" +
          extra.map((l) => `  only ${engine}: ${l}`).join("\n"),
      );
    }
  }
}

/** The tree recorded from Ansible in workload/expected/, when the roots are the recorded ones. */
function recorded(host: BenchHost): { engine: string; lines: string[] } | undefined {
  const file = join(BENCH, "workload", "expected", `${host.name}.tsv`);
  if (ROOTS !== EXPECTED_BASE || !existsSync(file)) return undefined;
  return { engine: "workload/expected", lines: readFileSync(file, "utf8").trim().split("\n") };
}

function checkNothingWritten(hosts: BenchHost[], engine: Engine) {
  const written = hosts.filter((h) => existsSync(h.root));
  if (written.length > 0)
    fail(`${engine} wrote below ${written.map((h) => h.root).join(", ")} in check mode`);
}

/** One -v run per scenario (not timed) for the remote command count Omens reports. */
async function statistics(setup: Setup, hosts: BenchHost[]): Promise<Record<Scenario, string>> {
  const counts = {} as Record<Scenario, string>;
  if (ENGINES.includes("ansible")) {
    resetRoots(hosts);
    await timedRun(setup, "ansible", "first", hosts, 5, "warmup");
  }
  for (const scenario of ["first", "second", "check"] as Scenario[]) {
    if (!ENGINES.includes("omens")) break;
    if (scenario !== "second") resetRoots(hosts);
    const run = await timedRun(setup, "omens", scenario, hosts, 5, "stats", true);
    judge(run, hosts);
    counts[scenario] = /statistics: (.*)/.exec(run.log)?.[1] ?? "?";
  }
  return counts;
}

/** Fixed costs before any host is contacted: the help text, and listing the playbook's tasks. */
async function startupTable(setup: Setup): Promise<string> {
  const omens = [process.execPath, join(PROJECT, "bin", "omens-play.js")];
  const site = join(BENCH, "omens", "site.ts");
  const list = ["-i", setup.inventories.omens, "--list-tasks"];
  const cases: [string, string[], string, NodeJS.ProcessEnv?][] = [
    ["omens-play --help", [...omens, "--help"], PROJECT],
    [
      "omens-play --list-tasks (inventory, playbook, 3 hosts compiled)",
      [...omens, site, ...list],
      PROJECT,
    ],
    [
      "the same from the sources (OMENS_TSX=1)",
      [...omens, site, ...list],
      PROJECT,
      { OMENS_TSX: "1" },
    ],
    ["ansible-playbook --help", ["ansible-playbook", "--help"], join(BENCH, "ansible")],
    [
      "ansible-playbook --list-tasks",
      ["ansible-playbook", "-i", setup.inventories.ansible, "--list-tasks", "site.yml"],
      join(BENCH, "ansible"),
    ],
  ];
  const rows = ["| start-up | wall s | CPU s | max RSS MB |", "|---|---:|---:|---:|"];
  const samples = new Map<string, Measured[]>();
  for (let rep = 0; rep < REPS; rep += 1) {
    for (const [label, argv, cwd, env] of cases) {
      if (!ENGINES.includes(label.startsWith("ansible") ? "ansible" : "omens")) continue;
      const logFile = join(setup.results, "logs", `startup-${rep}.log`);
      const run = await timed(argv, { cwd, env: { ...process.env, ...env }, logFile });
      samples.set(label, [...(samples.get(label) ?? []), run]);
    }
  }
  for (const [label, runs] of samples) {
    const m = (f: (r: Measured) => number) => median(runs.map(f));
    rows.push(
      `| ${label} | ${m((r) => r.wallS).toFixed(2)} | ${m((r) => r.cpuS).toFixed(2)} | ${m((r) => r.maxRssMb).toFixed(0)} |`,
    );
  }
  return rows.join("\n");
}

function sideBySideTable(runs: Run[], commands: Record<Scenario, string>): string {
  const rows = [
    "| run | engine | wall s | CPU s (controller) | max RSS MB | target CPU s | wall runs s |",
    "|---|---|---:|---:|---:|---:|---|",
  ];
  const ratios = [
    "| run | wall: Ansible / Omens | CPU: Ansible / Omens | memory: Ansible / Omens | Omens, -v statistics |",
    "|---|---:|---:|---:|---|",
  ];
  for (const scenario of Object.keys(SCENARIOS) as Scenario[]) {
    const m: Partial<Record<Engine, ReturnType<typeof medians>>> = {};
    for (const engine of ENGINES) {
      const mine = runs.filter((r) => r.engine === engine && r.scenario === scenario);
      const s = (m[engine] = medians(mine));
      rows.push(
        `| ${SCENARIOS[scenario]} | ${engine} | ${s.wall.toFixed(2)} | ${s.cpu.toFixed(2)} | ${s.rss.toFixed(0)} | ${s.target.toFixed(2)} | ${mine.map((r) => r.wallS.toFixed(2)).join(" / ")} |`,
      );
    }
    const a = m.ansible;
    const o = m.omens;
    if (a && o)
      ratios.push(
        `| ${SCENARIOS[scenario]} | **${(a.wall / o.wall).toFixed(1)}x** | ${(a.cpu / o.cpu).toFixed(1)}x | ${(a.rss / o.rss).toFixed(1)}x | ${commands[scenario] ?? "?"} |`,
      );
  }
  return [...rows, "", ...ratios].join("\n");
}

function medians(runs: Run[]) {
  return {
    wall: median(runs.map((r) => r.wallS)),
    cpu: median(runs.map((r) => r.cpuS)),
    rss: median(runs.map((r) => r.maxRssMb)),
    target: median(runs.map((r) => r.targetCpuS)),
  };
}

async function scaling(sshd: Sshd) {
  const counts = (process.env.BENCH_SCALE_HOSTS ?? "3 10 30 100").split(/\s+/).map(Number);
  const ansibleMax = Number(process.env.BENCH_SCALE_ANSIBLE_MAX ?? 10);
  const reps = Number(process.env.BENCH_REPS ?? 1);
  const started = new Date();
  const loads: number[] = [loadavg()[0] as number];
  const rows = [
    "| hosts | forks | engine | (a) first run s | (b) idempotent s | CPU s (b) | max RSS MB (b) |",
    "|---:|---:|---|---:|---:|---:|---:|",
  ];
  let results = "";
  for (const count of counts) {
    const hosts = fleet(count, ROOTS);
    const setup = prepare(sshd, hosts, "scale");
    results = dirname(setup.results);
    const forkList = [10, 50];
    for (const forks of forkList) {
      // With at least as many forks as hosts already run, more forks change nothing.
      const covered = forkList.some((f) => f < forks && f >= count);
      for (const engine of ENGINES) {
        if (engine === "ansible" && (count > ansibleMax || covered)) continue;
        const runs: Run[] = [];
        for (let rep = 1; rep <= reps; rep += 1)
          runs.push(...(await scaleRuns(setup, engine, hosts, forks, rep)));
        const first = runs.some((r) => r.scenario === "first")
          ? medians(runs.filter((r) => r.scenario === "first")).wall.toFixed(2)
          : "—";
        const second = medians(runs.filter((r) => r.scenario === "second"));
        rows.push(
          `| ${count} | ${forks} | ${engine} | ${first} | ${second.wall.toFixed(2)} | ${second.cpu.toFixed(2)} | ${second.rss.toFixed(0)} |`,
        );
        loads.push(loadavg()[0] as number);
      }
    }
    resetRoots(hosts);
  }
  const command = `BENCH_REPS=${reps} npm run bench -- --scale`;
  const note = `Ansible runs only up to ${ansibleMax} hosts (BENCH_SCALE_ANSIBLE_MAX), and not at forks 50 where forks 10 already covers every host; its re-runs start from roots an untimed Omens first run converged (BENCH_SCALE_ANSIBLE_FIRST=1 times its first runs too).`;
  print(
    join(results, `scale-${Date.now()}`),
    [describeRun(started, loads, command), note, "", ...rows].join("\n"),
  );
}

/**
 * Omens: first run and re-run. Ansible (when BENCH_SCALE_ANSIBLE_FIRST is not 1): only the
 * re-run, on roots an untimed Omens run converged; it must find nothing to change, which also
 * shows that both engines mean the same end state. Ansible's first runs take minutes here.
 */
async function scaleRuns(
  setup: Setup,
  engine: Engine,
  hosts: BenchHost[],
  forks: number,
  rep: number,
): Promise<Run[]> {
  if (engine === "omens" || process.env.BENCH_SCALE_ANSIBLE_FIRST === "1")
    return workload(setup, engine, hosts, forks, rep, ["first", "second"]);
  resetRoots(hosts);
  judge(await timedRun(setup, "omens", "first", hosts, forks, `prep${rep}`), hosts);
  return workload(setup, engine, hosts, forks, rep, ["second"]);
}

function describeRun(started: Date, loads: number[], command: string): string {
  const ansible = spawnSync("ansible-playbook", ["--version"]).stdout?.toString().split("\n")[0];
  return [
    `Measured ${started.toISOString().slice(0, 16).replace("T", " ")} UTC on ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), Node ${process.version}, ${ansible ?? "no Ansible"}.`,
    `Load average (1 min) during the runs: ${Math.min(...loads).toFixed(2)} to ${Math.max(...loads).toFixed(2)}. Command: \`${command}\`.`,
  ].join("\n");
}

function print(results: string, text: string) {
  mkdirSync(results, { recursive: true });
  writeFileSync(join(results, "table.md"), text + "\n");
  process.stdout.write(`\n${text}\n\nresults: ${results}\n`);
}

function ensureTools() {
  const missing: string[] = [];
  if (ENGINES.includes("ansible") && spawnSync("ansible-playbook", ["--version"]).status !== 0)
    missing.push("ansible-core");
  if (!existsSync("/usr/sbin/sshd")) missing.push("openssh-server");
  if (!existsSync("/usr/bin/time")) missing.push("time");
  if (missing.length === 0) return;
  log(`installing ${missing.join(" ")} with apt-get`);
  execFileSync("apt-get", ["install", "-y", "--no-install-recommends", ...missing], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

function log(message: string) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function fail(message: string, output?: string): never {
  if (output) process.stderr.write(output.split("\n").slice(-40).join("\n") + "\n");
  process.stderr.write(`\nBENCH FAILED: ${message}\n`);
  process.exit(1);
}

await main();
