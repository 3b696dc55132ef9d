import {
  command,
  copy,
  deferred,
  defineRole,
  file,
  Secret,
  stat,
  systemd,
  template,
  Type,
  type Static,
  type Task,
  type TaskContext,
} from "../../engine/index.js";
import { quote } from "../../engine/shell.js";
import { healthGate, neededStdout } from "../common/gates.js";
import { installRelease, Release } from "../common/release.js";
import { missingValueError } from "../common/errors.js";
import { attestorGuard, describeAttestors } from "../common/attestors.js";
import { Port, SpireLogLevel } from "../common/schema.js";

/** The agent's config file. */
export const AGENT_CONFIG = "/etc/spire/agent/agent.conf";
/** The agent's systemd unit. */
export const AGENT_UNIT = "/etc/systemd/system/spire-agent.service";
/** The server's trust bundle the agent bootstraps from. */
export const AGENT_BUNDLE = "/etc/spire/agent/bootstrap-bundle.pem";
const TOKEN_FILE = "/etc/spire/agent/join_token";

/** Variables of the spire-agent role. */
export const SpireAgentVars = Type.Object(
  {
    trustDomain: Type.String({ default: "funlab.casa", pattern: "^[a-z0-9._-]+$" }),
    spireRelease: Release,
    /** The server's address as the agent dials it. */
    spireServerAddress: Type.String({ minLength: 1 }),
    spireServerPort: Port(8081),
    /** Inventory name of the SPIRE server host: join tokens and the bundle come from there. */
    spireServerHost: Type.String({ default: "spire", minLength: 1 }),
    spireServerSocket: Type.String({ default: "/run/spire/server/api.sock" }),
    /**
     * The attestation phase of this host's agent: join_token until sprint 3 has moved it, then
     * tpm_devid. The role refuses to write the other one over what the host's agent.conf has.
     */
    spireAgentAttestor: Type.Union([Type.Literal("join_token"), Type.Literal("tpm_devid")], {
      default: "join_token",
    }),
    spireAgentSocket: Type.String({
      default: "/run/spire/agent/api.sock",
      pattern: "^/run/spire/agent/",
    }),
    spireAgentDataDir: Type.String({ default: "/var/lib/spire/agent", pattern: "^/" }),
    spireAgentLogLevel: SpireLogLevel,
    spireAgentHealthPort: Port(8088),
    /** Lifetime of a join token in seconds: it is used once, right after it is made. */
    spireJoinTokenTtl: Type.Integer({ default: 600, minimum: 60 }),
    devidCertPath: Type.String({ default: "/var/lib/tpm2-devid/devid.crt" }),
    devidPrivPath: Type.String({ default: "/var/lib/tpm2-devid/devid.priv.blob" }),
    devidPubPath: Type.String({ default: "/var/lib/tpm2-devid/devid.pub.blob" }),
    /** Empty: the agent finds the one /dev/tpmrm* itself. */
    spireAgentTpmDevicePath: Type.String({ default: "" }),
    /** The TCTI the TPM is reached through, given to the agent's environment. */
    tpmTcti: Type.String({ default: "device:/dev/tpmrm0" }),
  },
  { additionalProperties: false },
);
type Vars = Static<typeof SpireAgentVars>;

/**
 * Installs and runs a SPIRE agent. A host that already holds its agent data (a cached SVID in
 * data_dir) is never attested again: no token is made, the bundle is not re-bootstrapped, and
 * the data directory is never removed. A new host gets the server's bundle and a single-use join
 * token made on the server; both travel through registered results, never through output.
 * Before anything is written, the host's agent.conf must attest with `spireAgentAttestor` (or
 * not exist): a re-run never moves an agent back to join_token, nor around sprint 3's move.
 *
 * @example
 * play("agents", { roles: [spireAgent()] }) // spireAgentAttestor from the inventory
 */
export const spireAgent = defineRole("spire-agent", {
  vars: SpireAgentVars,
  handlers: (vars) => ({
    restart: systemd({
      name: "spire-agent: restart",
      unit: "spire-agent",
      state: "restarted",
      daemonReload: true,
    }),
    healthy: agentHealth(vars),
  }),
  tasks: (vars, { handlers, host }) => {
    const restart = [handlers.restart, handlers.healthy];
    return [
      ...attestorGuard("spire-agent", host, {
        path: AGENT_CONFIG,
        register: "agentConfAttestors",
        conflict: (found) => agentPhaseConflict(found, vars.spireAgentAttestor),
      }),
      file({ path: "/etc/spire", state: "directory", owner: "root", group: "root", mode: "0755" }),
      file({
        path: "/etc/spire/agent",
        state: "directory",
        owner: "root",
        group: "root",
        mode: "0750",
      }),
      file({
        path: "/var/lib/spire",
        state: "directory",
        owner: "root",
        group: "root",
        mode: "0755",
      }),
      file({
        path: vars.spireAgentDataDir,
        state: "directory",
        owner: "root",
        group: "root",
        mode: "0700",
      }),
      ...installRelease({
        product: "spire",
        release: vars.spireRelease,
        binaries: ["bin/spire-agent"],
        stripComponents: 1,
        notify: restart,
      }),
      stat({
        name: "spire-agent: does this host hold agent data",
        path: `${vars.spireAgentDataDir}/agent-data.json`,
        register: "agentData",
      }),
      ...bootstrap(vars),
      ...(vars.spireAgentAttestor === "join_token" ? joinToken(vars, host) : []),
      template({
        src: "agent.conf.hbs",
        dest: AGENT_CONFIG,
        owner: "root",
        group: "root",
        mode: "0640",
        vars: agentConfView(vars),
        validate: "spire-agent validate -config %s",
        notify: restart,
      }),
      template({
        src: "spire-agent.service.hbs",
        dest: AGENT_UNIT,
        mode: "0644",
        vars: agentUnitView(vars),
        notify: restart,
      }),
      systemd({ unit: "spire-agent", state: "started", enabled: true, daemonReload: true }),
      agentHealth(vars),
    ];
  },
});

/**
 * Why the inventory's attestor may not be written over the one agent.conf has, if it may not.
 * Only sprint 3 moves an agent to tpm_devid: it also drops the cached join_token SVID, without
 * which the agent would keep its old identity under a tpm_devid config.
 */
export function agentPhaseConflict(found: string[], wanted: Vars["spireAgentAttestor"]) {
  if (found.length === 0 || found.includes(wanted)) return undefined;
  const has = `attests with ${describeAttestors(found)}, but the inventory asks for ${wanted}`;
  return wanted === "join_token"
    ? `${has}: the agent has moved to tpm_devid; set spireAgentAttestor: tpm_devid for this host`
    : `${has}: an agent moves to tpm_devid through playbooks/sprint3-migrate.ts; keep spireAgentAttestor: join_token for this host until sprint 3 has moved it`;
}

/** True once the agent has attested and cached its SVID: it must never be attested again. */
export function isAttested(ctx: TaskContext): boolean {
  const stat = ctx.registered.agentData?.stat as { exists?: boolean } | undefined;
  return stat?.exists === true;
}

const notAttested = (ctx: TaskContext) => !isAttested(ctx);

/** The trust bundle for the first start, read from the server (only before attestation). */
function bootstrap(vars: Vars): Task[] {
  return [
    command({
      name: `spire-agent: the server's trust bundle (from ${vars.spireServerHost})`,
      argv: [
        "spire-server",
        "bundle",
        "show",
        "-socketPath",
        vars.spireServerSocket,
        "-format",
        "pem",
      ],
      delegateTo: vars.spireServerHost,
      register: "serverBundle",
      when: notAttested,
      changedWhen: () => false,
    }),
    copy({
      name: `spire-agent: ${AGENT_BUNDLE}`,
      dest: AGENT_BUNDLE,
      content: deferred((ctx) => neededStdout(ctx, "serverBundle", "SPIRE trust bundle")),
      owner: "root",
      group: "root",
      mode: "0644",
      when: notAttested,
    }),
  ];
}

/** A single-use join token, made on the server for this host and written root-only. */
function joinToken(vars: Vars, host: string): Task[] {
  return [
    command({
      name: `spire-agent: a join token for ${host} (on ${vars.spireServerHost})`,
      argv: [
        "spire-server",
        "token",
        "generate",
        "-socketPath",
        vars.spireServerSocket,
        "-spiffeID",
        `spiffe://${vars.trustDomain}/host/${host}`,
        "-ttl",
        String(vars.spireJoinTokenTtl),
        "-output",
        "json",
      ],
      delegateTo: vars.spireServerHost,
      register: "joinToken",
      noLog: true,
      when: notAttested,
      lint: { skip: ["command-changed"], reason: "runs only before the host's first attestation" },
    }),
    copy({
      name: `spire-agent: ${TOKEN_FILE}`,
      dest: TOKEN_FILE,
      content: deferred((ctx) => tokenSecret(ctx)),
      owner: "root",
      group: "root",
      mode: "0600",
      noLog: true,
      when: notAttested,
    }),
  ];
}

function tokenSecret(ctx: TaskContext): Secret {
  const stdout = ctx.registered.joinToken?.stdout;
  if (typeof stdout !== "string" || stdout === "") {
    if (ctx.check) return new Secret("(a join token is made in a real run)", "join token");
    throw missingValueError("the join token command gave no output");
  }
  const value = (JSON.parse(stdout) as { value?: unknown }).value;
  if (typeof value !== "string" || value === "")
    throw missingValueError('token generate -output json gave no "value"');
  return new Secret(value, "join token");
}

/** The view agent.conf.hbs renders: every value it names is defined. */
export function agentConfView(vars: Vars): Record<string, unknown> {
  return {
    trustDomain: vars.trustDomain,
    serverAddress: vars.spireServerAddress,
    serverPort: vars.spireServerPort,
    socketPath: vars.spireAgentSocket,
    dataDir: vars.spireAgentDataDir,
    logLevel: vars.spireAgentLogLevel,
    trustBundlePath: AGENT_BUNDLE,
    joinToken: vars.spireAgentAttestor === "join_token",
    joinTokenFile: TOKEN_FILE,
    tpmDevid: vars.spireAgentAttestor === "tpm_devid",
    devidCertPath: vars.devidCertPath,
    devidPrivPath: vars.devidPrivPath,
    devidPubPath: vars.devidPubPath,
    tpmDevicePath: vars.spireAgentTpmDevicePath,
    healthPort: vars.spireAgentHealthPort,
  };
}

/** The view spire-agent.service.hbs renders: the TPM's TCTI only for tpm_devid. */
export function agentUnitView(vars: Vars): Record<string, unknown> {
  return {
    configPath: AGENT_CONFIG,
    tpmTcti: vars.spireAgentAttestor === "tpm_devid" ? vars.tpmTcti : "",
  };
}

/** Asks the agent for an X509-SVID as `user`, i.e. as one of the host's workloads; prints nothing. */
export function fetchSvidCommand(vars: Pick<Vars, "spireAgentSocket">, user: string): string {
  return `runuser -u ${quote(user)} -- spire-agent api fetch x509 -socketPath ${quote(vars.spireAgentSocket)} >/dev/null`;
}

/** Gate: a workload of the host (`user`) gets an X509-SVID, asked 16 times 2 s apart. */
export function workloadSvidGate(
  vars: Pick<Vars, "spireAgentSocket">,
  user: string,
  name = `gate: a workload (${user}) still gets an X509-SVID`,
): Task {
  return command({
    name,
    shell: fetchSvidCommand(vars, user),
    retries: 15,
    delay: 2,
    changedWhen: () => false,
  });
}

/**
 * Healthy means the agent answers on its socket. A spent join token is named as the cause
 * instead of a bare timeout: that agent will not come up until it gets a fresh token.
 */
export function agentHealth(vars: Pick<Vars, "spireAgentSocket">): Task {
  const spent = `journalctl --no-pager _SYSTEMD_INVOCATION_ID="$(systemctl show -p InvocationID --value spire-agent)" 2>/dev/null | grep -qi 'has already been used'`;
  const probe = `spire-agent healthcheck -socketPath ${quote(vars.spireAgentSocket)} >/dev/null 2>&1 || { if ${spent}; then echo 'the agent failed to attest: join token does not exist or has already been used' >&2; exit 3; fi; false; }`;
  return healthGate("spire-agent: healthy", `{ ${probe}; }`, 30, "spire-agent");
}
