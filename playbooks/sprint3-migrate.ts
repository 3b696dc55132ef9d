import { fileURLToPath } from "node:url";
import {
  assert,
  block,
  command,
  copy,
  deferred,
  definePlaybook,
  file,
  play,
  systemd,
  template,
  x509,
  type PlayContext,
  type Task,
  type TaskContext,
  type Step,
} from "../engine/index.js";
import { quote } from "../engine/shell.js";
import { roleVars, withOptions } from "../roles/common/compose.js";
import { roleVarsError } from "../roles/common/errors.js";
import { failureEvidence, healthGate } from "../roles/common/gates.js";
import {
  AGENT_BUNDLE,
  AGENT_CONFIG,
  AGENT_UNIT,
  agentConfView,
  agentHealth,
  agentUnitView,
  fetchSvidCommand,
  SpireAgentVars,
  workloadSvidGate,
} from "../roles/spire-agent/index.js";
import {
  SERVER_DEVID_CA,
  SERVER_ENDORSEMENT_CA,
  serverConfView,
  SpireServerVars,
} from "../roles/spire-server/index.js";
import { registeredMigrationState } from "../roles/spire-server/migration.js";

/**
 * Sprint 3: SPIRE agents move from join_token to tpm_devid attestation, one host at a time.
 *
 * 1. The server accepts tpm_devid next to join_token (run once, on the server host, from the
 *    agents' play, so `--limit auth` still reaches it).
 * 2. Each agent in turn: DevID gates, a backup, the tpm_devid config, its cached agent state
 *    removed, a restart, then three gates (agent healthy, the server lists this host's tpm_devid
 *    agent, a workload still gets an SVID). A failed gate restores the backup, proves join_token
 *    healthy again and fails the host, which stops the rollout.
 * 3. When the server's own lists show every agent moved, the old join_token agents are evicted
 *    and join_token leaves server.conf; a run limited to some hosts never gets there early.
 */

const AGENT_HOSTS = "agents:servers";
const SERVER_CONF = "/etc/spire/server/server.conf";
const BACKUP = "/var/backups/spire-agent.join_token";
const roleTemplate = (role: string, name: string) =>
  fileURLToPath(new URL(`../roles/${role}/templates/${name}`, import.meta.url));

type ServerVars = (typeof SpireServerVars)["static"];
/** Reads another inventory host's variables (the server's, from an agent host's play). */
type Peers = Pick<PlayContext<string>, "hostVars">;

const text = (v: unknown, fallback = "") => (typeof v === "string" ? v : fallback);
const days = (vars: Record<string, unknown>) =>
  typeof vars.devidMinDaysLeft === "number" ? vars.devidMinDaysLeft : 14;

/** The live lists the join_token decision is made from: every agent the server knows. */
function serverLists(server: string, socket: string, prefix: string): Task[] {
  const list = (what: "agent" | "entry", register: string) =>
    command({
      name: `server: ${what === "agent" ? "attested agents" : "registration entries"} (${prefix})`,
      argv: [
        "spire-server",
        what,
        what === "agent" ? "list" : "show",
        "-socketPath",
        socket,
        "-output",
        "json",
      ],
      delegateTo: server,
      runOnce: true,
      register,
      checkMode: false,
      changedWhen: () => false,
    });
  return [list("agent", `${prefix}Agents`), list("entry", `${prefix}Entries`)];
}

/**
 * server.conf with the attestors the live state calls for: join_token stays while any listed
 * agent still depends on it. Written on the server host from that host's own variables,
 * validated, restarted once, gated.
 */
function serverAttestors(vars: Record<string, unknown>, peers: Peers, prefix: string): Task[] {
  const host = text(vars.spireServerHost, "spire");
  const server = roleVars(SpireServerVars, peers.hostVars(host));
  const done = (ctx: TaskContext) =>
    registeredMigrationState(ctx, `${prefix}Agents`, `${prefix}Entries`)?.allMigrated === true;
  const conf = (attestors: ServerVars["spireNodeAttestors"]) =>
    serverConfView({ ...server, spireNodeAttestors: attestors });
  const on = { delegateTo: host, runOnce: true } as const;
  const changed = (ctx: TaskContext) =>
    [`${prefix}DevidCa`, `${prefix}EkCa`, `${prefix}Conf`].some(
      (r) => ctx.registered[r]?.changed === true,
    );
  if (!server.spireDevidCaFile || !server.spireEndorsementCaFile)
    throw roleVarsError(
      "sprint 3",
      `sprint 3 needs "spireDevidCaFile" and "spireEndorsementCaFile" in the inventory (the DevID and EK trust roots)`,
    );
  return [
    ...serverLists(host, server.spireServerSocket, prefix),
    copy({
      name: "server: DevID trust roots",
      src: server.spireDevidCaFile,
      dest: SERVER_DEVID_CA,
      owner: "root",
      group: "spire",
      mode: "0640",
      register: `${prefix}DevidCa`,
      ...on,
    }),
    copy({
      name: "server: EK CA certificates",
      src: server.spireEndorsementCaFile,
      dest: SERVER_ENDORSEMENT_CA,
      owner: "root",
      group: "spire",
      mode: "0640",
      register: `${prefix}EkCa`,
      ...on,
    }),
    template({
      name: `server: ${SERVER_CONF} accepts tpm_devid (join_token while agents need it)`,
      src: roleTemplate("spire-server", "server.conf.hbs"),
      dest: SERVER_CONF,
      owner: "root",
      group: "spire",
      mode: "0640",
      vars: deferred((ctx) =>
        done(ctx) ? conf(["tpm_devid"]) : conf(["join_token", "tpm_devid"]),
      ),
      register: `${prefix}Conf`,
      ...on,
    }),
    withOptions(
      healthGate(
        "server: server.conf validates",
        `spire-server validate -config ${SERVER_CONF} >/dev/null`,
        1,
      ),
      { ...on, when: changed },
    ),
    systemd({
      name: "server: restart spire-server",
      unit: "spire-server",
      state: "restarted",
      when: changed,
      ...on,
    }),
    withOptions(
      healthGate(
        "server: healthy",
        `spire-server healthcheck -socketPath ${quote(server.spireServerSocket)} >/dev/null 2>&1`,
        30,
        "spire-server",
      ),
      on,
    ),
  ];
}

/** True once this run has backed the agent up: only then is there anything to restore. */
const backedUp = (ctx: TaskContext) =>
  ctx.registered.agentBackup?.failed === false && !ctx.registered.agentBackup.skipped;

/**
 * True when this host's agent already runs tpm_devid (read before anything is touched): its
 * config says so, the running agent was started after its config and unit were written, and the
 * server lists a tpm_devid agent for the host. A run stopped halfway (config written, agent not
 * yet restarted) is therefore migrated again, not taken for done.
 */
const migrated = (ctx: TaskContext) =>
  ctx.registered.agentAttestor?.rc === 0 &&
  ctx.registered.serverListsDevid?.rc === 0 &&
  String(ctx.registered.serverListsDevid.stdout).includes('"tpm_devid"');

function migrateAgent(vars: Record<string, unknown>, host: string): Step[] {
  const agent = roleVars(SpireAgentVars, vars);
  const server = agent.spireServerHost;
  const cn = text(vars.devidCommonName);
  if (cn === "") throw roleVarsError("sprint 3", `host ${host} has no "devidCommonName"`);
  const probeUser = text(vars.spireWorkloadProbeUser, "root");
  const alias = `spiffe://${agent.trustDomain}/host/${host}`;
  const selector = `tpm_devid:subject:cn:${cn}`;
  /** Asks the server, as JSON, for the agents attested with this host's DevID. */
  const listDevidAgents = [
    "spire-server",
    "agent",
    "list",
    "-socketPath",
    agent.spireServerSocket,
    "-selector",
    selector,
    "-output",
    "json",
  ];
  // The role's own views: a sprint 1 or 2 re-run with spireAgentAttestor: tpm_devid writes
  // exactly these files again.
  const devid = { ...agent, spireAgentAttestor: "tpm_devid" } as const;
  const data = agent.spireAgentDataDir;
  const fetchSvid = fetchSvidCommand(agent, probeUser);

  const gates: Task[] = [
    x509({
      name: `gate: DevID certificate valid for more than ${days(vars)} days`,
      path: agent.devidCertPath,
      minDaysLeft: days(vars),
    }),
    command({
      name: "gate: DevID key blobs in place",
      shell: `test -s ${quote(agent.devidPrivPath)} && test -s ${quote(agent.devidPubPath)}`,
      checkMode: false,
      changedWhen: () => false,
    }),
    command({
      name: `server: node alias ${alias} for ${selector}`,
      shell:
        `if spire-server entry show -socketPath ${quote(agent.spireServerSocket)} -spiffeID ${quote(alias)} -selector ${quote(selector)} -output json | grep -q '"id"'; then exit 0; fi; ` +
        `spire-server entry create -socketPath ${quote(agent.spireServerSocket)} -node -spiffeID ${quote(alias)} -selector ${quote(selector)} >/dev/null && echo created`,
      delegateTo: server,
      changedWhen: (r) => String(r.stdout).includes("created"),
    }),
    command({
      name: `backup: agent config, unit and data to ${BACKUP}`,
      // A config that already says tpm_devid is a migration stopped halfway: the backup an
      // earlier run took of the join_token agent is the one to keep.
      shell:
        `if grep -q 'NodeAttestor "tpm_devid"' ${AGENT_CONFIG} && test -d ${BACKUP}/etc; then echo "kept the earlier backup"; exit 0; fi; ` +
        `rm -rf ${BACKUP} && mkdir -p ${BACKUP} && cp -a /etc/spire/agent ${BACKUP}/etc && cp -a ${AGENT_UNIT} ${BACKUP}/unit && cp -a ${quote(data)} ${BACKUP}/data`,
      register: "agentBackup",
      changedWhen: (r) => !String(r.stdout).includes("kept the earlier backup"),
    }),
    command({
      name: `agent: the server's trust bundle (from ${server})`,
      argv: ["spire-server", "bundle", "show", "-socketPath", agent.spireServerSocket],
      delegateTo: server,
      register: "migrationBundle",
      checkMode: false,
      changedWhen: () => false,
    }),
    copy({
      name: `agent: ${AGENT_BUNDLE}`,
      dest: AGENT_BUNDLE,
      content: deferred((ctx) => text(ctx.registered.migrationBundle?.stdout, "(bundle)\n")),
      owner: "root",
      group: "root",
      mode: "0644",
    }),
    template({
      name: `agent: ${AGENT_CONFIG} attests with tpm_devid`,
      src: roleTemplate("spire-agent", "agent.conf.hbs"),
      dest: AGENT_CONFIG,
      owner: "root",
      group: "root",
      mode: "0640",
      vars: agentConfView(devid),
      validate: "spire-agent validate -config %s",
    }),
    template({
      name: `agent: ${AGENT_UNIT} reaches the TPM`,
      src: roleTemplate("spire-agent", "spire-agent.service.hbs"),
      dest: AGENT_UNIT,
      mode: "0644",
      vars: agentUnitView(devid),
    }),
    file({
      name: "agent: cached join_token state removed (or the agent never re-attests)",
      path: `${data}/agent-data.json`,
      state: "absent",
    }),
    systemd({
      name: "agent: restart spire-agent",
      unit: "spire-agent",
      state: "restarted",
      daemonReload: true,
    }),
    withOptions(agentHealth(agent), { name: "gate: agent healthy" }),
    command({
      name: `gate: the server lists a tpm_devid agent for ${cn}`,
      argv: listDevidAgents,
      delegateTo: server,
      retries: 15,
      delay: 2,
      until: (r) => r.rc === 0 && String(r.stdout).includes('"tpm_devid"'),
      changedWhen: () => false,
    }),
    workloadSvidGate(agent, probeUser),
  ];

  const rollback: Task[] = [
    command({
      name: "rollback: restore agent config, unit and data",
      shell: `rm -rf /etc/spire/agent ${quote(data)} && cp -a ${BACKUP}/etc /etc/spire/agent && cp -a ${BACKUP}/unit ${AGENT_UNIT} && cp -a ${BACKUP}/data ${quote(data)} && echo restored`,
      when: backedUp,
      changedWhen: (r) => String(r.stdout).includes("restored"),
    }),
    systemd({
      name: "rollback: restart spire-agent",
      unit: "spire-agent",
      state: "restarted",
      daemonReload: true,
      when: backedUp,
    }),
    withOptions(agentHealth(agent), {
      name: "rollback: agent healthy on join_token",
      when: backedUp,
    }),
    command({
      name: "rollback: join_token attestation serves workloads again",
      shell: `grep -q 'NodeAttestor "join_token"' ${AGENT_CONFIG} && ${fetchSvid}`,
      retries: 15,
      delay: 2,
      when: backedUp,
      changedWhen: () => false,
    }),
    assert({
      name: "rollback: this host failed its migration",
      that: () => false,
      msg: deferred((ctx: TaskContext) => {
        const after = backedUp(ctx) ? "rolled back to join_token" : "nothing was changed";
        return ctx.failure.kind === "failed"
          ? `migration of ${host} failed at "${ctx.failure.task}": ${failureEvidence(ctx.failure.error)}; ${after}`
          : `migration of ${host} failed; ${after}`;
      }),
    }),
  ];

  // A host found on tpm_devid may have been moved by a run stopped before its gates: they run
  // again, and a failure fails the host (so join_token is not retired). Its join_token backup
  // is not restored: an earlier run took it, maybe long ago.
  const recheck: Task[] = [
    withOptions(agentHealth(agent), { name: "gate: agent healthy" }),
    workloadSvidGate(agent, probeUser),
  ];
  const recheckFailed = assert({
    name: "this host's tpm_devid agent failed its gates",
    that: () => false,
    msg: deferred((ctx: TaskContext) =>
      ctx.failure.kind === "failed"
        ? `${host} already attests with tpm_devid, but "${ctx.failure.task}" fails: ${failureEvidence(ctx.failure.error)}; not rolled back (the join_token backup in ${BACKUP} is from an earlier run); fix the cause and run again`
        : `${host} already attests with tpm_devid, but its gates fail`,
    ),
  });

  return [
    command({
      name: "agent: does it already run with tpm_devid",
      shell: [
        `grep -q 'NodeAttestor "tpm_devid"' ${AGENT_CONFIG} || { echo "config: join_token"; exit 1; }`,
        `systemctl is-active -q spire-agent || { echo "agent not active"; exit 2; }`,
        `[ "$(systemctl show -p NeedDaemonReload --value spire-agent)" = no ] || { echo "unit not reloaded"; exit 3; }`,
        `started=$(date -d "$(systemctl show -p ExecMainStartTimestamp --value spire-agent)" +%s) || exit 4`,
        `for f in ${AGENT_CONFIG} ${AGENT_UNIT}; do [ "$(stat -c %Y "$f")" -le "$started" ] || { echo "$f is newer than the running agent"; exit 5; }; done`,
      ].join("\n"),
      register: "agentAttestor",
      checkMode: false,
      failedWhen: () => false,
      changedWhen: () => false,
    }),
    command({
      name: `server: does it list a tpm_devid agent for ${cn}`,
      argv: listDevidAgents,
      delegateTo: server,
      register: "serverListsDevid",
      checkMode: false,
      failedWhen: () => false,
      changedWhen: () => false,
    }),
    block({
      name: `migrate ${host} to tpm_devid, or roll back`,
      when: (ctx) => !migrated(ctx),
      tasks: gates,
      rescue: rollback,
    }),
    block({
      name: `${host} already on tpm_devid: its gates again`,
      when: migrated,
      tasks: recheck,
      rescue: [recheckFailed],
    }),
  ];
}

/** Once every agent the server lists has moved: evict the old agents, drop join_token. */
function retireJoinToken(vars: Record<string, unknown>, peers: Peers): Task[] {
  const agent = roleVars(SpireAgentVars, vars);
  return [
    ...serverLists(agent.spireServerHost, agent.spireServerSocket, "evict"),
    command({
      name: "server: evict join_token agents replaced by tpm_devid",
      shell: deferred((ctx) => {
        const s = registeredMigrationState(ctx, "evictAgents", "evictEntries");
        return (s?.staleJoinTokenAgents ?? [])
          .map(
            (id) =>
              `spire-server agent evict -socketPath ${quote(agent.spireServerSocket)} -spiffeID ${quote(id)} >/dev/null`,
          )
          .join(" && ");
      }),
      delegateTo: agent.spireServerHost,
      runOnce: true,
      when: (ctx) => {
        const s = registeredMigrationState(ctx, "evictAgents", "evictEntries");
        return s?.allMigrated === true && s.staleJoinTokenAgents.length > 0;
      },
      changedWhen: () => true,
    }),
    ...serverAttestors(vars, peers, "final"),
  ];
}

export default definePlaybook("Sprint 3: agents move to tpm_devid", [
  play(AGENT_HOSTS, {
    name: "SPIRE server accepts tpm_devid",
    tasks: (vars, peers) => serverAttestors(vars, peers, "initial"),
  }),
  play(AGENT_HOSTS, {
    name: "SPIRE agents move to tpm_devid, one at a time",
    migrates: true,
    serial: 1,
    maxFailPercentage: 0,
    tasks: (vars, { host }) => migrateAgent(vars, host),
  }),
  play(AGENT_HOSTS, {
    name: "join_token retired once every agent has moved",
    tasks: (vars, peers) => retireJoinToken(vars, peers),
  }),
]);
