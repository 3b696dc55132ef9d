import {
  copy,
  defineRole,
  file,
  group,
  systemd,
  template,
  Type,
  user,
  type Task,
} from "../../engine/index.js";
import { quote } from "../../engine/shell.js";
import { healthGate } from "../common/gates.js";
import { installRelease, Release } from "../common/release.js";
import { Entry, spireEntries } from "./entries.js";
import { roleVarsError } from "../common/errors.js";
import { attestorGuard, describeAttestors } from "../common/attestors.js";
import { Port, SpireLogLevel } from "../common/schema.js";

export { Entry, spireEntries } from "./entries.js";

const CONFIG = "/etc/spire/server/server.conf";
/** On the server: the DevID trust roots its tpm_devid attestor reads. */
export const SERVER_DEVID_CA = "/etc/spire/server/devid-ca.pem";
/** On the server: the EK CA certificates its tpm_devid attestor reads. */
export const SERVER_ENDORSEMENT_CA = "/etc/spire/server/endorsement-ca.pem";

/** Variables of the spire-server role. */
export const SpireServerVars = Type.Object(
  {
    trustDomain: Type.String({ default: "funlab.casa", pattern: "^[a-z0-9._-]+$" }),
    /** The SPIRE release tarball (spire-<v>-linux-amd64-musl.tar.gz), pinned by sha256. */
    spireRelease: Release,
    spireServerBindAddress: Type.String({ default: "0.0.0.0" }),
    spireServerPort: Port(8081),
    /** The server API socket; every CLI call passes it with -socketPath. */
    spireServerSocket: Type.String({
      default: "/run/spire/server/api.sock",
      pattern: "^/run/spire/server/",
    }),
    spireServerDataDir: Type.String({ default: "/var/lib/spire/server", pattern: "^/" }),
    spireServerLogLevel: SpireLogLevel,
    spireServerHealthPort: Port(8080),
    /**
     * Node attestors the server accepts; join_token and tpm_devid may run side by side. The
     * attestation phase: [join_token] at first, [join_token, tpm_devid] while sprint 3 moves
     * agents, [tpm_devid] after. The role never drops tpm_devid or brings join_token back.
     */
    spireNodeAttestors: Type.Array(
      Type.Union([Type.Literal("join_token"), Type.Literal("tpm_devid")]),
      { default: ["join_token"], minItems: 1, uniqueItems: true },
    ),
    /** Controller file: PEM roots of the DevID chain (the step-ca root). Needed for tpm_devid. */
    spireDevidCaFile: Type.Optional(Type.String({ minLength: 1 })),
    /** Controller file: the CA(s) that signed the TPMs' EK certificates. Needed for tpm_devid. */
    spireEndorsementCaFile: Type.Optional(Type.String({ minLength: 1 })),
    spireCaTtl: Type.String({ default: "24h", pattern: "^[0-9]+(h|m|s)$" }),
    spireX509SvidTtl: Type.String({ default: "1h", pattern: "^[0-9]+(h|m|s)$" }),
    spireJwtSvidTtl: Type.String({ default: "5m", pattern: "^[0-9]+(h|m|s)$" }),
    spireCaSubject: Type.Object(
      { country: Type.String(), organization: Type.String(), commonName: Type.String() },
      {
        default: { country: "DE", organization: "funlab.casa", commonName: "SPIRE server CA" },
        additionalProperties: false,
      },
    ),
    /** The `iss` claim of JWT-SVIDs; OpenBao's bound_issuer must equal it. Empty: no issuer. */
    spireJwtIssuer: Type.String({ default: "" }),
    spireBundleEndpointAddress: Type.String({ default: "127.0.0.1" }),
    spireBundleEndpointPort: Port(8443),
    /** Registration entries, converged: created when missing, updated when different. */
    spireEntries: Type.Array(Entry, { default: [] }),
  },
  { additionalProperties: false },
);

/**
 * Installs and runs a SPIRE server: user, tight directories, a pinned release, server.conf
 * (sqlite, disk key manager, join_token and optionally tpm_devid, bundle endpoint, JWT issuer),
 * a systemd unit, a health gate, then the declared registration entries. Before anything is
 * written, a server.conf on the host must not lose tpm_devid nor get join_token back.
 *
 * @example
 * play("servers", { roles: [spireServer({ spireNodeAttestors: ["join_token", "tpm_devid"] })] })
 */
export const spireServer = defineRole("spire-server", {
  vars: SpireServerVars,
  handlers: (vars) => ({
    restart: systemd({
      name: "spire-server: restart",
      unit: "spire-server",
      state: "restarted",
      daemonReload: true,
    }),
    healthy: serverHealth(vars.spireServerSocket),
  }),
  tasks: (vars, { handlers, host }) => {
    const restart = [handlers.restart, handlers.healthy];
    const tpmDevid = vars.spireNodeAttestors.includes("tpm_devid");
    return [
      ...attestorGuard("spire-server", host, {
        path: CONFIG,
        register: "serverConfAttestors",
        conflict: (found) => serverPhaseConflict(found, vars.spireNodeAttestors),
      }),
      group({ name: "spire", system: true }),
      user({
        name: "spire",
        system: true,
        group: "spire",
        home: "/var/lib/spire",
        shell: "/usr/sbin/nologin",
        createHome: false,
      }),
      file({ path: "/etc/spire", state: "directory", owner: "root", group: "root", mode: "0755" }),
      file({
        path: "/etc/spire/server",
        state: "directory",
        owner: "root",
        group: "spire",
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
        path: vars.spireServerDataDir,
        state: "directory",
        owner: "spire",
        group: "spire",
        mode: "0700",
      }),
      ...installRelease({
        product: "spire",
        release: vars.spireRelease,
        binaries: ["bin/spire-server"],
        stripComponents: 1,
        notify: restart,
      }),
      ...(tpmDevid ? attestorCas(vars, restart) : []),
      template({
        src: "server.conf.hbs",
        dest: CONFIG,
        owner: "root",
        group: "spire",
        mode: "0640",
        vars: serverConfView(vars),
        validate: "spire-server validate -config %s",
        notify: restart,
      }),
      healthGate(
        "spire-server: server.conf validates",
        `spire-server validate -config ${CONFIG} >/dev/null`,
        1,
      ),
      template({
        src: "spire-server.service.hbs",
        dest: "/etc/systemd/system/spire-server.service",
        mode: "0644",
        vars: { runtimeDirectory: "spire/server", configPath: CONFIG },
        notify: restart,
      }),
      systemd({ unit: "spire-server", state: "started", enabled: true, daemonReload: true }),
      serverHealth(vars.spireServerSocket),
      spireEntries({
        name: `spire-server: ${vars.spireEntries.length} registration entries`,
        socketPath: vars.spireServerSocket,
        trustDomain: vars.trustDomain,
        entries: vars.spireEntries,
      }),
    ];
  },
});

type Vars = (typeof SpireServerVars)["static"];

/** The view server.conf.hbs renders: every value it names is defined. */
export function serverConfView(vars: Vars): Record<string, unknown> {
  return {
    trustDomain: vars.trustDomain,
    bindAddress: vars.spireServerBindAddress,
    bindPort: vars.spireServerPort,
    socketPath: vars.spireServerSocket,
    dataDir: vars.spireServerDataDir,
    logLevel: vars.spireServerLogLevel,
    caTtl: vars.spireCaTtl,
    caCountry: vars.spireCaSubject.country,
    caOrganization: vars.spireCaSubject.organization,
    caCommonName: vars.spireCaSubject.commonName,
    x509SvidTtl: vars.spireX509SvidTtl,
    jwtSvidTtl: vars.spireJwtSvidTtl,
    jwtIssuer: vars.spireJwtIssuer,
    bundleEndpointAddress: vars.spireBundleEndpointAddress,
    bundleEndpointPort: vars.spireBundleEndpointPort,
    joinToken: vars.spireNodeAttestors.includes("join_token"),
    tpmDevid: vars.spireNodeAttestors.includes("tpm_devid"),
    devidCaPath: SERVER_DEVID_CA,
    endorsementCaPath: SERVER_ENDORSEMENT_CA,
    healthPort: vars.spireServerHealthPort,
  };
}

/**
 * Why the inventory's attestors may not replace those server.conf has, if they may not: agents
 * attested with tpm_devid lose their attestor when it goes, and join_token, once sprint 3 has
 * retired it, does not come back through a re-run. Adding tpm_devid beside join_token (sprint
 * 3's first step) is allowed.
 */
export function serverPhaseConflict(found: string[], wanted: Vars["spireNodeAttestors"]) {
  if (!found.includes("tpm_devid")) return undefined;
  const drops = !wanted.includes("tpm_devid");
  const readds = !found.includes("join_token") && wanted.includes("join_token");
  if (!drops && !readds) return undefined;
  const keep = found.filter((a) => a === "join_token" || a === "tpm_devid").join(", ");
  const effect = drops
    ? "would drop tpm_devid, which moved agents attest with"
    : "would bring join_token back";
  return `declares ${describeAttestors(found)}, but the inventory's spireNodeAttestors [${wanted.join(", ")}] ${effect}; set spireNodeAttestors: [${keep}] for this host`;
}

function attestorCas(vars: Vars, notify: Parameters<typeof copy>[0]["notify"]): Task[] {
  if (!vars.spireDevidCaFile || !vars.spireEndorsementCaFile)
    throw roleVarsError(
      "spire-server",
      `the tpm_devid attestor needs "spireDevidCaFile" and "spireEndorsementCaFile"`,
    );
  return [
    copy({
      name: "spire-server: DevID CA roots",
      src: vars.spireDevidCaFile,
      dest: SERVER_DEVID_CA,
      owner: "root",
      group: "spire",
      mode: "0640",
      notify,
    }),
    copy({
      name: "spire-server: EK CA certificates",
      src: vars.spireEndorsementCaFile,
      dest: SERVER_ENDORSEMENT_CA,
      owner: "root",
      group: "spire",
      mode: "0640",
      notify,
    }),
  ];
}

function serverHealth(socket: string): Task {
  return healthGate(
    "spire-server: healthy",
    `spire-server healthcheck -socketPath ${quote(socket)} >/dev/null 2>&1`,
    30,
    "spire-server",
  );
}
