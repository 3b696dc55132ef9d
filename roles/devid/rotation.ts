import {
  assert,
  block,
  command,
  deferred,
  stat,
  systemd,
  x509,
  type CertFacts,
  type Step,
  type TaskContext,
} from "../../engine/index.js";
import { quote } from "../../engine/shell.js";
import { roleVars, withOptions } from "../common/compose.js";
import { failureEvidence } from "../common/gates.js";
import { agentHealth, SpireAgentVars, workloadSvidGate } from "../spire-agent/index.js";
import { DEVID_CHECK_UNIT } from "./check.js";
import { devidCertificate, DevidVars } from "./index.js";

/** The agent ID a tpm_devid agent gets: the SHA-1 of its DevID leaf (domain-reference §0.6). */
export function devidAgentId(trustDomain: string, sha1: string): string {
  return `spiffe://${trustDomain}/spire/agent/tpm_devid/${sha1.toLowerCase()}`;
}

/** True when the `stat` task registered under `name` found the file. */
function exists(ctx: TaskContext, name: string): boolean {
  return (ctx.registered[name]?.stat as { exists?: boolean } | undefined)?.exists === true;
}

/** The subject's common name of a certificate read by the `x509` module. */
function commonName(cert: CertFacts | undefined): string | undefined {
  return cert ? /(?:^|,\s*)CN=([^,]+)/.exec(cert.subject)?.[1] : undefined;
}

/** The certificate facts an `x509` task registered, if it ran and read one. */
function certOf(ctx: TaskContext, name: string): CertFacts | undefined {
  const result = ctx.registered[name];
  if (!result || result.skipped || result.failed) return undefined;
  return (result as { cert?: CertFacts }).cert;
}

/**
 * DevID rotation for one host. The certificate's days left are read first; a certificate within
 * `devidRenewDays` of expiry (or for another key or name) is re-issued by step-ca for the same
 * TPM key and installed atomically, the old one kept beside it. On a host whose agent attests
 * with tpm_devid the agent must attest again with the new certificate: its cached state goes,
 * it restarts, and three gates follow (agent healthy, the server lists the new agent ID, a
 * workload still gets an SVID); then the agent ID of the old certificate is evicted. When a
 * gate fails, the old certificate comes back, the agent restarts on it, and the host fails.
 * Outside the window nothing is written and nothing restarts.
 */
export function devidRotation(hostVars: Record<string, unknown>, host: string): Step[] {
  const devid = roleVars(DevidVars, hostVars);
  const agent = roleVars(SpireAgentVars, hostVars);
  const cert = `${devid.devidDir}/devid.crt`;
  const previous = `${cert}.previous`;
  const data = agent.spireAgentDataDir;
  const conf = "/etc/spire/agent/agent.conf";
  const probeUser =
    typeof hostVars.spireWorkloadProbeUser === "string" ? hostVars.spireWorkloadProbeUser : "root";
  const renewed = (ctx: TaskContext) => ctx.registered.devidInstalled?.changed === true;
  const onDevid = (ctx: TaskContext) => ctx.registered.devidAgentAttestor?.rc === 0;
  const newId = (ctx: TaskContext) => {
    const after = certOf(ctx, "devidAfter");
    return after ? devidAgentId(agent.trustDomain, after.sha1) : "(the agent ID of the new DevID)";
  };
  const oldId = (ctx: TaskContext) => {
    const before = certOf(ctx, "devidBefore");
    return before ? devidAgentId(agent.trustDomain, before.sha1) : undefined;
  };
  /** Asks the server for the agent of the DevID in place (exit 0 when it knows it). */
  const showNewAgent = (ctx: TaskContext) => [
    "spire-server",
    "agent",
    "show",
    "-socketPath",
    agent.spireServerSocket,
    "-spiffeID",
    newId(ctx),
  ];
  const server = agent.spireServerHost;
  const serverSocket = quote(agent.spireServerSocket);
  // Only a certificate this run replaced has a previous one to go back to.
  const restorable = (ctx: TaskContext) => renewed(ctx) && certOf(ctx, "devidBefore") !== undefined;

  const reattest: Step[] = [
    command({
      name: "agent: cached state removed, so it attests with the new DevID",
      shell: `rm -f ${quote(`${data}/agent-data.json`)}`,
      changedWhen: () => true,
    }),
    systemd({ name: "agent: restart spire-agent", unit: "spire-agent", state: "restarted" }),
    withOptions(agentHealth(agent), { name: "gate: agent healthy" }),
    command({
      name: "gate: the server lists the agent of the new DevID",
      argv: deferred(showNewAgent),
      delegateTo: server,
      retries: 15,
      delay: 2,
      changedWhen: () => false,
    }),
    workloadSvidGate(agent, probeUser),
    command({
      name: "server: evict the agent of the replaced DevID",
      shell: deferred((ctx) => {
        const id = oldId(ctx);
        return `if spire-server agent show -socketPath ${serverSocket} -spiffeID ${quote(id ?? "")} >/dev/null 2>&1; then spire-server agent evict -socketPath ${serverSocket} -spiffeID ${quote(id ?? "")} >/dev/null && echo evicted; fi`;
      }),
      delegateTo: server,
      // Only this host's own old agent: a certificate of another host's DevID put here by
      // mistake names that host's agent, which must stay.
      when: (ctx) => {
        const id = oldId(ctx);
        const before = certOf(ctx, "devidBefore");
        return (
          id !== undefined && id !== newId(ctx) && commonName(before) === devid.devidCommonName
        );
      },
      changedWhen: (r) => String(r.stdout).includes("evicted"),
    }),
  ];

  const putBack: Step[] = [
    command({
      name: `rollback: ${previous} back in place`,
      shell: `cp -p ${quote(previous)} ${quote(`${cert}.restore`)} && mv ${quote(`${cert}.restore`)} ${quote(cert)} && rm -f ${quote(`${data}/agent-data.json`)} && echo restored`,
      when: restorable,
      changedWhen: (r) => String(r.stdout).includes("restored"),
    }),
    systemd({ name: "rollback: restart spire-agent", unit: "spire-agent", state: "restarted" }),
    withOptions(agentHealth(agent), { name: "rollback: agent healthy on the previous DevID" }),
    assert({
      name: "rollback: this host's DevID rotation failed",
      that: () => false,
      msg: deferred((ctx: TaskContext) => {
        const after = restorable(ctx)
          ? "the previous certificate is back in place"
          : `there was no previous certificate to put back; the new one stays at ${cert}`;
        return ctx.failure.kind === "failed"
          ? `DevID rotation on ${host} failed at "${ctx.failure.task}": ${failureEvidence(ctx.failure.error)}; ${after}`
          : `DevID rotation on ${host} failed; ${after}`;
      }),
    }),
  ];

  return [
    stat({ name: `devid: ${cert}`, path: cert, register: "devidStat" }),
    x509({
      name: `devid: days left on ${cert}`,
      path: cert,
      register: "devidBefore",
      // A missing certificate is issued below, like one inside its window.
      when: (ctx) => exists(ctx, "devidStat"),
    }),
    command({
      name: "agent: does it attest with tpm_devid",
      shell: `grep -q 'NodeAttestor "tpm_devid"' ${quote(conf)}`,
      register: "devidAgentAttestor",
      checkMode: false,
      failedWhen: () => false,
      changedWhen: () => false,
    }),
    ...devidCertificate(devid, { register: "devidInstalled", backupTo: previous }),
    stat({ name: `devid: ${cert} now`, path: cert, register: "devidNowStat" }),
    x509({
      name: `devid: the certificate now at ${cert}`,
      path: cert,
      register: "devidAfter",
      checkMode: false,
      // In check mode a certificate due for renewal is still the old one, or still missing.
      when: (ctx) => exists(ctx, "devidNowStat") && !(ctx.check && renewed(ctx)) && onDevid(ctx),
    }),
    command({
      name: "server: is the agent of this DevID the one attested",
      argv: deferred(showNewAgent),
      delegateTo: server,
      register: "devidAgentListed",
      when: (ctx) => certOf(ctx, "devidAfter") !== undefined,
      checkMode: false,
      failedWhen: () => false,
      changedWhen: () => false,
    }),
    block({
      name: `${host}'s agent attests with the new DevID, or the old one comes back`,
      // Renewed now, or renewed earlier by another play (the devid role) without the agent
      // attesting again: the server does not know the agent of the certificate in place.
      when: (ctx) =>
        onDevid(ctx) && (renewed(ctx) || (ctx.registered.devidAgentListed?.rc ?? 0) !== 0),
      tasks: reattest,
      rescue: putBack,
    }),
    command({
      name: "devid: the renewal check's status follows the new certificate",
      shell: `if systemctl cat ${DEVID_CHECK_UNIT}.service >/dev/null 2>&1; then systemctl start ${DEVID_CHECK_UNIT}.service; fi`,
      when: renewed,
      changedWhen: () => false,
    }),
  ];
}
