import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashHostTree, rebuildLab, results, sshRoot, type PlayRun } from "../helpers/lab.js";
import { startPlay } from "../helpers/faults.js";
import { expectClean, labBeforeSprint3, playJson } from "./roles-lab.js";

// Sprint 3 on a lab converged by sprints 1 and 2. The tests share the lab and run in file
// order: a failed migration of auth (wrong DevID root on the server) is rolled back first, then
// auth alone migrates, then every agent does and join_token leaves the server.

const SPRINT3 = "playbooks/sprint3-migrate.ts";
const SERVER_SOCKET = "/run/spire/server/api.sock";
const AGENT_SOCKET = "/run/spire/agent/api.sock";
let inventory = "";

const play = playJson;

interface ListedAgent {
  id: { path: string };
  attestation_type: string;
  selectors: { type: string; value: string }[];
}

function serverAgents(): ListedAgent[] {
  const out = sshRoot("spire", `spire-server agent list -socketPath ${SERVER_SOCKET} -output json`);
  return (JSON.parse(out) as { agents: ListedAgent[] }).agents;
}

const devidAgentFor = (cn: string) =>
  serverAgents().filter(
    (a) =>
      a.attestation_type === "tpm_devid" &&
      a.selectors.some((s) => s.type === "tpm_devid" && s.value === `subject:cn:${cn}`),
  );

const agentConf = (host: "auth" | "ca" | "spire") =>
  sshRoot(host, "cat /etc/spire/agent/agent.conf");

/** Asks the host's agent for an X509-SVID once a second, on the host, until stopped. */
function startSvidProbe(host: "auth" | "ca") {
  sshRoot(
    host,
    `systemd-run --unit=svid-probe --quiet sh -c 'while :; do if spire-agent api fetch x509 -socketPath ${AGENT_SOCKET} >/dev/null 2>&1; then echo "$(date +%s) ok"; else echo "$(date +%s) fail"; fi; sleep 1; done > /root/svid-probe.log'`,
  );
  return () => {
    sshRoot(host, "systemctl stop svid-probe; true");
    return sshRoot(host, "cat /root/svid-probe.log")
      .trim()
      .split("\n")
      .map((line) => {
        const [at, verdict] = line.split(" ");
        return { at: Number(at), ok: verdict === "ok" };
      });
  };
}

/** The longest stretch, in seconds, from a failed probe to the next good one. */
function longestOutage(probes: { at: number; ok: boolean }[]): number {
  let longest = 0;
  let since: number | undefined;
  for (const p of probes) {
    if (!p.ok && since === undefined) since = p.at;
    if (p.ok && since !== undefined) {
      longest = Math.max(longest, p.at - since);
      since = undefined;
    }
  }
  return since === undefined ? longest : Infinity;
}

beforeAll(async () => {
  inventory = await labBeforeSprint3();
}, 900_000);

// These tests leave every agent on tpm_devid; later files expect a lab before sprint 3.
afterAll(rebuildLab, 300_000);

describe("sprint 3: agents move from join_token to tpm_devid", () => {
  it("--check --diff shows the plan for auth and touches no host", async () => {
    const before = (["spire", "auth", "ca"] as const).map(hashHostTree);
    const run = await play(SPRINT3, inventory, "--limit", "auth", "--check", "--diff");
    expectClean(run, "sprint 3 --check");
    const paths = results(run).flatMap((r) =>
      ((r.diff ?? []) as { path: string }[]).map((d) => d.path),
    );
    expect(paths).toEqual(
      expect.arrayContaining([
        "/etc/spire/server/server.conf",
        "/etc/spire/server/devid-ca.pem",
        "/etc/spire/agent/agent.conf",
        "/etc/systemd/system/spire-agent.service",
        "/var/lib/spire/agent/agent-data.json",
      ]),
    );
    expect((["spire", "auth", "ca"] as const).map(hashHostTree)).toEqual(before);
  }, 300_000);

  it("(2) a wrong DevID root fails auth at a gate: auth is rolled back to join_token, ca untouched", async () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-wrong-root-"));
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "root.pem"),
      "-days",
      "30",
      "-subj",
      "/CN=Not the DevID root",
    ]);
    const wrong = join(dir, "lab.yaml");
    writeFileSync(
      wrong,
      readFileSync(inventory, "utf8").replace(
        /spireDevidCaFile: \S+/,
        `spireDevidCaFile: ${join(dir, "root.pem")}`,
      ),
    );
    const caBefore = hashHostTree("ca");
    const authConfBefore = agentConf("auth");
    const run = await play(SPRINT3, wrong, "--limit", "auth");

    expect(run.code, run.stderr).toBe(2);
    const failed = results(run, "auth").filter((r) => r.status === "failed");
    const gate = failed.find((r) => String(r.task).startsWith("rollback: this host failed"));
    expect(gate, JSON.stringify(failed, null, 1)).toBeDefined();
    // The failed step is named (a gate, or the restart that already sees the agent crash),
    // with the agent's own evidence: the DevID chain does not reach the server's root.
    const message = String(gate?.error ?? gate?.reason ?? JSON.stringify(gate));
    expect(message).toMatch(/migration of auth failed at "(gate: |agent: restart)/);
    expect(message).toContain("does not chain to a trusted root");
    expect(agentConf("auth")).toBe(authConfBefore);
    expect(agentConf("auth")).toContain('NodeAttestor "join_token"');
    expect(sshRoot("auth", `spire-agent healthcheck -socketPath ${AGENT_SOCKET}`)).toContain(
      "Agent is healthy.",
    );
    sshRoot("auth", `spire-agent api fetch x509 -socketPath ${AGENT_SOCKET} >/dev/null`);
    expect(devidAgentFor("auth.funlab.casa")).toEqual([]);
    expect(hashHostTree("ca")).toBe(caBefore);
  }, 600_000);

  it("(1) --limit auth migrates auth only, its workload keeps its SVID, ca stays on join_token", async () => {
    const caConf = agentConf("ca");
    const stop = startSvidProbe("auth");
    let probes: { at: number; ok: boolean }[] = [];
    let run: PlayRun;
    try {
      run = await play(SPRINT3, inventory, "--limit", "auth");
    } finally {
      probes = stop();
    }
    expectClean(run, "sprint 3 --limit auth");
    expect(Object.keys(run.recap)).toEqual(["auth"]);

    expect(devidAgentFor("auth.funlab.casa")).toHaveLength(1);
    expect(devidAgentFor("ca.funlab.casa")).toEqual([]);
    expect(agentConf("auth")).toContain('NodeAttestor "tpm_devid"');
    expect(sshRoot("auth", "test -e /var/lib/spire/agent/agent-data.json && echo cached")).toBe(
      "cached\n",
    );
    expect(agentConf("ca")).toBe(caConf);
    expect(serverAgents().some((a) => a.attestation_type === "join_token")).toBe(true);
    expect(sshRoot("spire", "cat /etc/spire/server/server.conf")).toContain(
      'NodeAttestor "join_token"',
    );

    // The probe ran through the whole migration; at most one gate interval (the agent health
    // gate gives the restarted agent 30 s) passed without an SVID, and it ended on a good one.
    expect(probes.length).toBeGreaterThanOrEqual(3);
    expect(probes.at(-1)?.ok).toBe(true);
    expect(longestOutage(probes)).toBeLessThanOrEqual(30);
  }, 600_000);

  it("a host found on tpm_devid is gated again: a failing gate fails it, not taken for done", async () => {
    // Both the agent's health check and workloads reach it through this socket.
    sshRoot("auth", `mv ${AGENT_SOCKET} ${AGENT_SOCKET}.off`);
    let run: PlayRun;
    try {
      run = await play(SPRINT3, inventory, "--limit", "auth");
    } finally {
      sshRoot("auth", `mv ${AGENT_SOCKET}.off ${AGENT_SOCKET}`);
    }
    expect(run.code, run.stderr).toBe(2);
    const failed = results(run, "auth").filter((r) => r.status === "failed");
    const verdict = failed.find((r) => r.task === "this host's tpm_devid agent failed its gates");
    expect(String(verdict?.error), JSON.stringify(failed, null, 1)).toContain(
      'auth already attests with tpm_devid, but "gate: agent healthy" fails: exit code 1',
    );
    expect(String(verdict?.error)).toContain("not rolled back");
    expect(agentConf("auth")).toContain('NodeAttestor "tpm_devid"');
    expect(sshRoot("spire", "cat /etc/spire/server/server.conf")).toContain(
      'NodeAttestor "join_token"',
    );
    sshRoot("auth", `spire-agent api fetch x509 -socketPath ${AGENT_SOCKET} >/dev/null`);
  }, 300_000);

  it("a run stopped by Ctrl-C after ca's agent.conf says tpm_devid is finished by the next run", async () => {
    const mainPid = () => sshRoot("ca", "systemctl show -p MainPID --value spire-agent").trim();
    const before = mainPid();
    const live = startPlay([SPRINT3, "-i", inventory, "--json", "--limit", "ca"]);
    // Ctrl-C as the config task starts, read from the stream rather than polled: the task
    // finishes, and the restart a few tasks later never starts.
    const configTask = "agent: /etc/spire/agent/agent.conf attests with tpm_devid";
    let pending = "";
    const onData = (chunk: Buffer) => {
      const lines = (pending + chunk.toString()).split("\n");
      pending = lines.pop() ?? "";
      const starts = lines
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { kind: string; task?: string; host?: string })
        .some((e) => e.kind === "task-start" && e.task === configTask && e.host === "ca");
      if (starts) {
        live.child.kill("SIGINT");
        live.child.stdout?.off("data", onData);
      }
    };
    live.child.stdout?.on("data", onData);
    const stopped = await live.done;
    expect(stopped.code).toBe(130);
    // Stopped halfway: the config says tpm_devid, the agent still runs on join_token.
    expect(agentConf("ca")).toContain('NodeAttestor "tpm_devid"');
    expect(devidAgentFor("ca.funlab.casa")).toEqual([]);

    const run = await play(SPRINT3, inventory, "--limit", "ca");
    expectClean(run, "sprint 3 --limit ca after a stop");
    const status = (task: string) => results(run, "ca").find((r) => r.task === task)?.status;
    expect(status("agent: restart spire-agent")).toBe("changed");
    expect(devidAgentFor("ca.funlab.casa")).toHaveLength(1);
    expect(mainPid()).not.toBe(before);
    // The backup kept is the join_token agent's, taken before the stop.
    expect(sshRoot("ca", "cat /var/backups/spire-agent.join_token/etc/agent.conf")).toContain(
      'NodeAttestor "join_token"',
    );
  }, 900_000);

  it("(3) every agent moves, join_token is retired, and a second run changes nothing", async () => {
    const run = await play(SPRINT3, inventory);
    expectClean(run, "sprint 3 full");
    for (const cn of ["spire.funlab.casa", "auth.funlab.casa", "ca.funlab.casa"])
      expect(devidAgentFor(cn), cn).toHaveLength(1);
    expect(serverAgents().filter((a) => a.attestation_type === "join_token")).toEqual([]);
    const conf = sshRoot("spire", "cat /etc/spire/server/server.conf");
    expect(conf).not.toContain('NodeAttestor "join_token"');
    expect(conf).toContain('NodeAttestor "tpm_devid"');
    for (const [host, user] of [
      ["auth", "root"],
      ["ca", "step"],
      ["spire", "openbao"],
    ] as const)
      sshRoot(
        host,
        `runuser -u ${user} -- spire-agent api fetch x509 -socketPath ${AGENT_SOCKET} >/dev/null`,
      );

    const again = await play(SPRINT3, inventory);
    expectClean(again, "sprint 3 second run");
    for (const [host, counts] of Object.entries(again.recap))
      expect((counts as { changed: number }).changed, host).toBe(0);
  }, 900_000);
});
