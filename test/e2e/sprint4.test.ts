import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  hashHostTree,
  rebuildLab,
  results,
  sshOk,
  sshRoot,
  waitUntil,
  type LabHost,
  type PlayRun,
} from "../helpers/lab.js";
import { expectClean, labBeforeSprint3, playJson } from "./roles-lab.js";

// Sprint 4 on a fresh lab taken through sprints 1 to 3 (every agent on tpm_devid). The tests
// run in file order: a check run, a rotation whose gate fails and is rolled back, a rotation of
// exactly the one certificate inside its window, then a second run that changes nothing.
// The lab is rebuilt before and after: these tests leave agents migrated and sshd hardened.

const SPRINT4 = "playbooks/sprint4-harden.ts";
const HOSTS = ["spire", "auth", "ca"] as const;
const CERT = "/var/lib/tpm2-devid/devid.crt";
const SERVER_SOCKET = "/run/spire/server/api.sock";
const AGENT_SOCKET = "/run/spire/agent/api.sock";
let inventory = "";

const play = playJson;

const changedTasks = (run: PlayRun, host: string) =>
  results(run, host)
    .filter((r) => r.status === "changed")
    .map((r) => String(r.task));

const certOf = (host: LabHost) => sshRoot(host, `cat ${CERT}`);
const agentId = (pem: string) =>
  `spiffe://funlab.casa/spire/agent/tpm_devid/${new X509Certificate(pem).fingerprint.replaceAll(":", "").toLowerCase()}`;
const agentInvocation = (host: LabHost) =>
  sshRoot(host, "systemctl show -p InvocationID --value spire-agent").trim();
const listedAgents = () =>
  (
    JSON.parse(
      sshRoot("spire", `spire-server agent list -socketPath ${SERVER_SOCKET} -output json`),
    ) as { agents: { id: { trust_domain: string; path: string } }[] }
  ).agents.map((a) => `spiffe://${a.id.trust_domain}${a.id.path}`);

/** The lab inventory in the attestation phase after sprint 3 (what an operator sets). */
function migratedInventory(): string {
  const file = join(mkdtempSync(join(tmpdir(), "omens-migrated-")), "lab.yaml");
  writeFileSync(
    file,
    readFileSync(inventory, "utf8")
      .replace(/^(\s+)spireAgentAttestor: join_token$/m, "$1spireAgentAttestor: tpm_devid")
      .replace(/^(\s+)spireNodeAttestors: \[join_token\]$/m, "$1spireNodeAttestors: [tpm_devid]"),
  );
  return file;
}

/**
 * Puts the host inside its renewal window: a DevID certificate for the same TPM key that
 * expires in `hours`, signed by the lab step-ca and installed by hand, and the agent attested
 * again with it (as the sprint 4 playbook would have).
 */
async function shortLivedCert(host: LabHost, hours: number): Promise<string> {
  const csr = sshOk(
    host,
    `TPM2OPENSSL_TCTI=swtpm:host=127.0.0.1,port=2321 openssl req -new -provider tpm2 -provider default -key handle:0x81010002 -subj /CN=${host}.funlab.casa -addext subjectAltName=DNS:${host}.funlab.casa`,
  );
  const pem = sshOk(
    "ca",
    `d=$(mktemp -d); cat > $d/r.csr; step ca sign $d/r.csr $d/o.crt --provisioner tpm-devid --provisioner-password-file /etc/step-ca/secrets/tpm-devid.password --ca-url https://127.0.0.1:9000 --root /etc/step-ca/certs/root_ca.crt --not-after ${hours}h >/dev/null 2>&1; cat $d/o.crt; rm -rf $d`,
    csr,
  );
  sshOk(
    host,
    `cat > ${CERT}.new && chown root:tss ${CERT}.new && chmod 0640 ${CERT}.new && mv ${CERT}.new ${CERT} && rm -f /var/lib/spire/agent/agent-data.json && systemctl restart spire-agent`,
    pem,
  );
  await waitUntil(`${host}'s agent healthy on the short-lived DevID`, () =>
    sshRoot(host, `spire-agent healthcheck -socketPath ${AGENT_SOCKET} 2>&1 || true`).includes(
      "Agent is healthy.",
    )
      ? true
      : undefined,
  );
  return pem;
}

beforeAll(async () => {
  inventory = await labBeforeSprint3();
  expectClean(await play("playbooks/sprint3-migrate.ts", inventory), "sprint 3");
}, 1_200_000);

// Later test files expect a lab with agents on join_token and sshd as the lab made it.
afterAll(rebuildLab, 300_000);

describe("sprint 4: DevID rotation, renewal timer, hardening", () => {
  it("--check --diff plans the timer and hardening, renews nothing, and touches no host", async () => {
    const before = HOSTS.map(hashHostTree);
    const run = await play(SPRINT4, inventory, "--check", "--diff");
    // Its closing health checks see what sprint 4 is about to fix: no sandbox, no timer yet.
    expect(run.code, run.stderr).toBe(3);
    const failed = run.events.filter((e) => e.kind === "task-result" && e.status !== "ok");
    expect(
      failed.filter((e) => e.status === "unreachable" || (e.status === "failed" && !e.ignored)),
    ).toEqual([]);
    const unhealthy = new Set(
      run.events
        .filter((e) => e.kind === "health" && e.healthy === false)
        .map((e) => `${String(e.host)} ${String(e.check)}`),
    );
    for (const host of HOSTS) expect(unhealthy).toContain(`${host} runs in its systemd sandbox`);
    expect(
      [...unhealthy].filter(
        (u) => !/ (runs in its systemd sandbox|renewal check timer: last result)$/.test(u),
      ),
    ).toEqual([]);
    for (const host of HOSTS) {
      const changed = changedTasks(run, host);
      expect(changed.some((t) => t.includes("omens-devid-check.timer"))).toBe(true);
      expect(changed.some((t) => t.includes("50-omens-hardening.conf"))).toBe(true);
      expect(changed.filter((t) => t.startsWith("devid:"))).toEqual([]);
    }
    expect(HOSTS.map(hashHostTree)).toEqual(before);
  }, 300_000);

  it("a renewed DevID whose gate fails is rolled back: the old certificate and agent stay", async () => {
    const short = await shortLivedCert("auth", 240);
    // A probe user with no registration entry: the workload gate cannot pass on auth.
    const dir = mkdtempSync(join(tmpdir(), "omens-sprint4-"));
    const broken = join(dir, "lab.yaml");
    writeFileSync(
      broken,
      readFileSync(inventory, "utf8").replace(
        /(auth\.funlab\.casa, spireWorkloadProbeUser: )root/,
        "$1nobody",
      ),
    );
    expect(readFileSync(broken, "utf8")).toContain("spireWorkloadProbeUser: nobody");
    const run = await play(SPRINT4, broken, "--limit", "auth");

    expect(run.code, run.stderr).toBe(2);
    const failed = results(run, "auth").filter((r) => r.status === "failed");
    const verdict = failed.find((r) => String(r.task).startsWith("rollback: this host's DevID"));
    expect(verdict, JSON.stringify(failed, null, 1)).toBeDefined();
    expect(String(verdict?.error)).toMatch(/DevID rotation on auth failed at "gate: a workload/);
    expect(certOf("auth")).toBe(short);
    expect(sshRoot("auth", `spire-agent healthcheck -socketPath ${AGENT_SOCKET}`)).toContain(
      "Agent is healthy.",
    );
    expect(listedAgents()).toContain(agentId(short));
  }, 600_000);

  it("renews exactly the certificate inside its window, for the same TPM key, behind gates", async () => {
    const short = certOf("auth");
    expect(new X509Certificate(short).validTo).not.toBe("");
    const untouched = ["spire", "ca"] as const;
    const certs = untouched.map(certOf);

    const run = await play(SPRINT4, inventory);
    expectClean(run, "sprint 4");

    // auth: a new certificate, 90 days, the same TPM key, the agent on its new ID.
    const renewed = certOf("auth");
    expect(renewed).not.toBe(short);
    const leaf = new X509Certificate(renewed);
    const daysLeft = (Date.parse(leaf.validTo) - Date.now()) / 86_400_000;
    expect(daysLeft).toBeGreaterThan(85);
    expect(leaf.subject).toContain("CN=auth.funlab.casa");
    const tpmKey = sshOk(
      "auth",
      `t=$(mktemp); TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=2321 tpm2_readpublic -c 0x81010002 -f pem -o $t >/dev/null && cat $t; rm -f $t`,
    );
    expect(leaf.publicKey.export({ type: "spki", format: "pem" })).toBe(tpmKey);
    expect(sshRoot("auth", `stat -c '%U:%G %a' ${CERT}`).trim()).toBe("root:tss 640");
    const listed = listedAgents();
    expect(listed).toContain(agentId(renewed));
    expect(listed).not.toContain(agentId(short));
    sshOk("auth", `spire-agent api fetch x509 -socketPath ${AGENT_SOCKET} >/dev/null`);
    expect(changedTasks(run, "auth")).toEqual(
      expect.arrayContaining([
        `devid: ${CERT} is installed`,
        "agent: restart spire-agent",
        "server: evict the agent of the replaced DevID",
      ]),
    );

    // spire and ca: outside the window, nothing written, their agents not re-attested. (This
    // first full run restarts them once, into the hardening sandbox; the next test run shows
    // they then stay up.)
    expect(untouched.map(certOf)).toEqual(certs);
    for (const host of untouched)
      expect(
        changedTasks(run, host).filter((t) => t.startsWith("devid:") || t.startsWith("agent:")),
      ).toEqual([]);

    // The renewal check on each host reports the certificate it now has.
    for (const host of HOSTS) {
      const status = JSON.parse(sshRoot(host, "cat /var/lib/omens/devid-status.json")) as {
        state: string;
        daysLeft: number;
      };
      expect(status.state, host).toBe("fresh");
      expect(status.daysLeft, host).toBeGreaterThan(85);
      expect(sshRoot(host, "systemctl is-enabled omens-devid-check.timer").trim()).toBe("enabled");
    }
  }, 600_000);

  it("the health report: every service healthy, then exactly the stopped ones unhealthy (exit 3)", async () => {
    interface Row {
      host: string;
      component: string;
      check: string;
      healthy: boolean;
      detail: string;
    }
    const dir = mkdtempSync(join(tmpdir(), "omens-health-"));
    const report = (name: string) =>
      JSON.parse(readFileSync(join(dir, name), "utf8")) as { health: Row[]; check: boolean };

    const good = await play("playbooks/health.ts", inventory, "--report", join(dir, "good.json"));
    expect(good.code, good.stderr).toBe(0);
    const rows = report("good.json").health;
    expect(rows.filter((r) => !r.healthy)).toEqual([]);
    const components = (host: string) => [
      ...new Set(rows.filter((r) => r.host === host).map((r) => r.component)),
    ];
    expect(components("spire")).toEqual([
      "spire-server",
      "spire-agent",
      "tpm",
      "devid",
      "openbao",
      "nginx",
    ]);
    expect(components("auth")).toEqual(["spire-agent", "tpm", "devid"]);
    expect(components("ca")).toEqual(["spire-agent", "tpm", "devid", "step-ca"]);
    expect(
      rows.find((r) => r.component === "openbao" && r.check.startsWith("initialised"))?.detail,
    ).toBe("active, unsealed");

    sshRoot("spire", "systemctl stop nginx");
    sshRoot("ca", "systemctl stop spire-agent");
    try {
      const bad = await play(
        "playbooks/health.ts",
        inventory,
        "--check",
        "--report",
        join(dir, "bad.json"),
      );
      expect(bad.code, bad.stderr).toBe(3);
      const unhealthy = report("bad.json")
        .health.filter((r) => !r.healthy)
        .map((r) => `${r.host} ${r.component} ${r.check}`)
        .sort();
      expect(unhealthy).toEqual([
        "ca spire-agent a workload (step) gets an X509-SVID",
        "ca spire-agent healthcheck",
        "ca spire-agent runs in its systemd sandbox",
        "spire nginx JWKS at https://spire.lab:8444/keys",
        "spire nginx active",
      ]);
    } finally {
      sshRoot("spire", "systemctl start nginx");
      sshRoot("ca", "systemctl start spire-agent");
    }
  }, 300_000);
  it("the drift report: the whole stack under --check, per host and role (exit 6)", async () => {
    const migrated = migratedInventory();
    expect(readFileSync(migrated, "utf8")).toMatch(/spireNodeAttestors: \[tpm_devid\]/);
    const reportFile = join(dirname(migrated), "drift.json");
    const site = (...extra: string[]) =>
      play("playbooks/site.ts", migrated, "--check", "--fail-on-change", ...extra);

    const clean = await site();
    expect(clean.code, clean.stderr).toBe(0);

    // Drift made by hand: a weaker sshd setting on auth, a looser server.conf mode on spire.
    const drop = "/etc/ssh/sshd_config.d/50-omens-hardening.conf";
    sshRoot("auth", `sed -i 's/^MaxAuthTries 3$/MaxAuthTries 6/' ${drop}`);
    sshRoot("spire", "chmod 0644 /etc/spire/server/server.conf");
    const before = HOSTS.map(hashHostTree);
    const drifted = await site("--report", reportFile);
    expect(drifted.code, drifted.stderr).toBe(6);
    const changes = (JSON.parse(readFileSync(reportFile, "utf8")) as { changes: unknown[] })
      .changes;
    expect(changes).toEqual(
      expect.arrayContaining([
        {
          host: "spire",
          role: "spire-server",
          tasks: ["spire-server: template /etc/spire/server/server.conf"],
        },
        { host: "auth", role: "hardening", tasks: [`hardening: template ${drop}`] },
      ]),
    );
    expect(changes).toHaveLength(2);
    expect(HOSTS.map(hashHostTree)).toEqual(before);

    // A real run puts both back; the next check finds no drift.
    expectClean(await play("playbooks/site.ts", migrated), "site.ts");
    expect(sshRoot("auth", `grep MaxAuthTries ${drop}`).trim()).toBe("MaxAuthTries 3");
    const again = await site();
    expect(again.code, again.stderr).toBe(0);
  }, 600_000);

  it("a DevID lost and re-issued by another play: the agent attests again with the new one", async () => {
    const migrated = migratedInventory();
    const kept = certOf("auth");
    sshRoot("auth", `rm ${CERT}`);
    // The check names the drift and the missing certificate (unhealthy wins: exit 3).
    const check = await play("playbooks/site.ts", migrated, "--check", "--limit", "auth");
    expect(check.code, check.stderr).toBe(3);
    expect(changedTasks(check, "auth")).toEqual(
      expect.arrayContaining([`devid: ${CERT} is installed`, "agent: restart spire-agent"]),
    );
    // The devid role's play re-issues it; the rotation play sees the server does not know
    // the agent of that certificate, and makes the agent attest with it.
    expectClean(await play("playbooks/site.ts", migrated, "--limit", "auth"), "site.ts");
    const issued = certOf("auth");
    expect(issued).not.toBe(kept);
    expect(listedAgents()).toContain(agentId(issued));
    const again = await play(
      "playbooks/site.ts",
      migrated,
      "--check",
      "--fail-on-change",
      "--limit",
      "auth",
    );
    expect(again.code, again.stderr).toBe(0);
  }, 600_000);

  it("the renewal check on its own fails inside the window, and the hardening holds", async () => {
    const agents = HOSTS.map(agentInvocation);
    const run = await play(SPRINT4, inventory);
    expectClean(run, "sprint 4 again");
    for (const host of HOSTS) expect(run.recap[host]?.changed, host).toBe(0);
    expect(HOSTS.map(agentInvocation)).toEqual(agents);

    await shortLivedCert("ca", 100);
    const check = sshRoot("ca", "systemctl start omens-devid-check.service 2>&1; echo rc=$?");
    expect(check).not.toContain("rc=0");
    const status = JSON.parse(sshRoot("ca", "cat /var/lib/omens/devid-status.json")) as {
      state: string;
      daysLeft: number;
    };
    expect(status).toMatchObject({ state: "renew", daysLeft: 4 });
    expect(sshRoot("ca", "systemctl is-failed omens-devid-check.service || true").trim()).toBe(
      "failed",
    );

    for (const host of HOSTS) {
      const sshd = sshRoot(host, "sshd -T");
      expect(sshd).toContain("passwordauthentication no");
      expect(sshd).toContain("permitrootlogin without-password");
      const pid = sshRoot(host, "systemctl show -p MainPID --value spire-agent").trim();
      expect(sshRoot(host, `grep NoNewPrivs /proc/${pid}/status`)).toMatch(/NoNewPrivs:\s+1/);
      expect(sshRoot(host, `nsenter -t ${pid} -m touch /usr/omens-probe 2>&1 || true`)).toContain(
        "Read-only file system",
      );
    }
  }, 600_000);
});
