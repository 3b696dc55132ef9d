import {
  command,
  defineRole,
  file,
  group,
  systemd,
  template,
  Type,
  user,
  type Static,
  type Task,
} from "../../engine/index.js";
import { healthGate } from "../common/gates.js";
import { installRelease, Release } from "../common/release.js";
import { stepCertificate, stepRoot, stepSigner } from "../common/step-cert.js";
import { baoState, type BaoClient } from "./state.js";

const CONFIG = "/etc/openbao/openbao.hcl";
const TLS = "/etc/openbao/tls";
const CA_FILE = `${TLS}/ca.crt`;
const INIT_FILE = "/etc/openbao/init/init.json";
const CLIENT: BaoClient = { addr: "https://127.0.0.1:8200", caCert: CA_FILE, initFile: INIT_FILE };

const PolicyPath = Type.Object(
  {
    path: Type.String({ minLength: 1 }),
    capabilities: Type.Array(
      Type.Union(
        ["create", "read", "update", "patch", "delete", "list", "scan", "deny", "sudo"].map((c) =>
          Type.Literal(c),
        ),
      ),
      { minItems: 1 },
    ),
  },
  { additionalProperties: false },
);

/** Variables of the openbao role. */
export const OpenbaoVars = Type.Object(
  {
    openbaoRelease: Release,
    /** The name clients use; the TLS certificate covers it (and 127.0.0.1). */
    openbaoDnsNames: Type.Array(Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9.-]*$" }), {
      minItems: 1,
    }),
    openbaoApiAddr: Type.String({ pattern: "^https://" }),
    openbaoClusterAddr: Type.String({ pattern: "^https://" }),
    openbaoListenAddress: Type.String({ default: "0.0.0.0:8200" }),
    openbaoClusterListenAddress: Type.String({ default: "0.0.0.0:8201" }),
    openbaoNodeId: Type.String({ default: "" }),
    openbaoClusterName: Type.String({ default: "tower-of-omens" }),
    openbaoLogLevel: Type.Union(
      [
        Type.Literal("trace"),
        Type.Literal("debug"),
        Type.Literal("info"),
        Type.Literal("warn"),
        Type.Literal("error"),
      ],
      { default: "info" },
    ),
    stepCaHost: Type.String({ default: "ca" }),
    stepCaPort: Type.Integer({ default: 9000 }),
    /** Configure JWT auth for SPIFFE JWT-SVIDs (needs the JWKS proxy to be up). */
    openbaoJwtAuth: Type.Boolean({ default: false }),
    openbaoJwksUrl: Type.String({
      default: "https://spire.funlab.casa:8444/keys",
      pattern: "^https://",
    }),
    /** bound_issuer: the SPIRE server's jwt_issuer. Empty: not checked. */
    openbaoJwtIssuer: Type.String({ default: "" }),
    openbaoJwtRole: Type.Object(
      {
        name: Type.String({ pattern: "^[a-z0-9-]+$" }),
        boundAudiences: Type.Array(Type.String(), { minItems: 1 }),
        boundSubject: Type.String({ pattern: "^spiffe://" }),
        policy: Type.String({ pattern: "^[a-z0-9-]+$" }),
        tokenTtl: Type.String({ pattern: "^[0-9]+(s|m|h)$" }),
      },
      {
        default: {
          name: "spire-workload",
          boundAudiences: ["openbao"],
          boundSubject: "spiffe://funlab.casa/workload/openbao",
          policy: "spire-workload-policy",
          tokenTtl: "1h",
        },
        additionalProperties: false,
      },
    ),
    openbaoPolicyPaths: Type.Array(PolicyPath, {
      default: [{ path: "secret/data/spire/*", capabilities: ["read"] }],
    }),
  },
  { additionalProperties: false },
);
type Vars = Static<typeof OpenbaoVars>;

/**
 * Runs OpenBao on raft storage behind a step-ca TLS certificate, initialises it exactly once
 * (the init output stays on the host, root-only), unseals it after every start, and when asked
 * configures JWT auth for SPIFFE JWT-SVIDs with the spire-workload role and policy.
 *
 * @example
 * play("openbao", { roles: [openbao({ openbaoJwtAuth: true })] })
 */
export const openbao = defineRole("openbao", {
  vars: OpenbaoVars,
  handlers: () => ({
    restart: systemd({
      name: "openbao: restart",
      unit: "openbao",
      state: "restarted",
      daemonReload: true,
    }),
    unseal: unseal(),
    healthy: baoHealthy(),
  }),
  tasks: (vars, { handlers, host }) => {
    const restart = [handlers.restart, handlers.unseal, handlers.healthy];
    return [
      group({ name: "openbao", system: true }),
      user({
        name: "openbao",
        system: true,
        group: "openbao",
        home: "/var/lib/openbao",
        shell: "/usr/sbin/nologin",
        createHome: false,
      }),
      file({
        path: "/etc/openbao",
        state: "directory",
        owner: "root",
        group: "openbao",
        mode: "0750",
      }),
      file({ path: TLS, state: "directory", owner: "root", group: "openbao", mode: "0750" }),
      file({
        path: "/etc/openbao/init",
        state: "directory",
        owner: "root",
        group: "root",
        mode: "0700",
      }),
      file({
        path: "/etc/openbao/policies",
        state: "directory",
        owner: "root",
        group: "root",
        mode: "0750",
      }),
      file({
        path: "/var/lib/openbao",
        state: "directory",
        owner: "openbao",
        group: "openbao",
        mode: "0700",
      }),
      ...installRelease({
        product: "openbao",
        release: vars.openbaoRelease,
        binaries: ["bao"],
        stripComponents: 0,
        notify: restart,
      }),
      ...stepRoot({
        id: "openbao",
        caHost: vars.stepCaHost,
        caRoot: "/etc/step-ca/certs/root_ca.crt",
        dest: CA_FILE,
      }),
      ...stepCertificate({
        id: "openbaoTls",
        label: "openbao TLS",
        signer: stepSigner(vars.stepCaHost, vars.stepCaPort, "services"),
        commonName: vars.openbaoDnsNames[0] ?? host,
        dnsNames: vars.openbaoDnsNames,
        ipAddresses: ["127.0.0.1"],
        certPath: `${TLS}/tls.crt`,
        owner: "root",
        group: "openbao",
        mode: "0644",
        key: {
          kind: "file",
          path: `${TLS}/tls.key`,
          owner: "root",
          group: "openbao",
          mode: "0640",
        },
        renewBeforeSeconds: 7 * 86400,
        notify: restart,
      }),
      template({
        src: "openbao.hcl.hbs",
        dest: CONFIG,
        owner: "root",
        group: "openbao",
        mode: "0640",
        vars: openbaoConfView(vars, host),
        notify: restart,
      }),
      template({
        src: "openbao.service.hbs",
        dest: "/etc/systemd/system/openbao.service",
        mode: "0644",
        vars: { configPath: CONFIG },
        notify: restart,
      }),
      systemd({ unit: "openbao", state: "started", enabled: true, daemonReload: true }),
      healthGate(
        "openbao: answers on /v1/sys/health (501/503 while bootstrapping)",
        `${healthCode()} | grep -Eqx '200|429|501|503'`,
        30,
        "openbao",
      ),
      initialise(),
      unseal(),
      baoHealthy(),
      ...(vars.openbaoJwtAuth ? jwtAuth(vars) : []),
    ];
  },
});

/** The view openbao.hcl.hbs renders. */
export function openbaoConfView(vars: Vars, host: string): Record<string, unknown> {
  return {
    logLevel: vars.openbaoLogLevel,
    clusterName: vars.openbaoClusterName,
    apiAddr: vars.openbaoApiAddr,
    clusterAddr: vars.openbaoClusterAddr,
    dataDir: "/var/lib/openbao",
    nodeId: vars.openbaoNodeId || host,
    listenAddress: vars.openbaoListenAddress,
    clusterListenAddress: vars.openbaoClusterListenAddress,
    tlsCertFile: `${TLS}/tls.crt`,
    tlsKeyFile: `${TLS}/tls.key`,
  };
}

function healthCode(): string {
  return `curl -s -o /dev/null -w '%{http_code}' --cacert ${CA_FILE} ${CLIENT.addr}/v1/sys/health`;
}

const BAO_ENV = `export BAO_ADDR=${CLIENT.addr} BAO_CACERT=${CA_FILE}`;

/**
 * `bao operator init`, at most once: the init file is the marker, and a server that says it is
 * already initialised while the file is missing is refused rather than initialised again.
 */
function initialise(): Task {
  const script = [
    `set -e; umask 077; ${BAO_ENV}`,
    `if bao status -format=json 2>/dev/null | tr -d ' \\n' | grep -q '"initialized":true'; then echo "OpenBao is already initialised but ${INIT_FILE} is missing: refusing to initialise it again" >&2; exit 1; fi`,
    `bao operator init -key-shares=1 -key-threshold=1 -format=json > ${INIT_FILE}.tmp`,
    `mv ${INIT_FILE}.tmp ${INIT_FILE}`,
  ].join("\n");
  return command({
    name: "openbao: initialise once (keys stay root-only on this host)",
    shell: script,
    creates: INIT_FILE,
    noLog: true,
  });
}

/** Unseals a sealed server with the key from the init file; the key goes by stdin to curl. */
function unseal(): Task {
  const key = `tr -d ' \\n\\t\\r' < ${INIT_FILE} | sed -n 's/.*"unseal_keys_b64":\\["\\([^"]*\\)".*/\\1/p'`;
  const script = [
    `${BAO_ENV}; i=0`,
    `until code=$(${healthCode()}) && echo "$code" | grep -Eqx '200|429|501|503'; do i=$((i+1)); [ "$i" -ge 30 ] && { echo "OpenBao does not answer (last status $code)" >&2; exit 1; }; sleep 1; done`,
    `[ "$code" = 503 ] || { echo "not sealed (status $code)"; exit 0; }`,
    `key=$(${key}); [ -n "$key" ] || { echo "no unseal key in ${INIT_FILE}" >&2; exit 1; }`,
    `printf '{"key":"%s"}' "$key" | curl -sS --fail --cacert ${CA_FILE} -X PUT --data-binary @- ${CLIENT.addr}/v1/sys/unseal >/dev/null`,
    `echo "unsealed now"`,
  ].join("\n");
  return command({
    name: "openbao: unsealed",
    shell: script,
    noLog: true,
    changedWhen: (result) => String(result.stdout).includes("unsealed now"),
  });
}

function baoHealthy(): Task {
  return healthGate(
    "openbao: initialised, unsealed and active (200)",
    `${healthCode()} | grep -qx 200`,
    30,
    "openbao",
  );
}

function jwtAuth(vars: Vars): Task[] {
  const role = vars.openbaoJwtRole;
  const policyFile = `/etc/openbao/policies/${role.policy}.hcl`;
  return [
    template({
      src: "policy.hcl.hbs",
      dest: policyFile,
      mode: "0640",
      vars: { paths: vars.openbaoPolicyPaths },
    }),
    baoState({
      name: "openbao: the jwt auth method is enabled",
      client: CLIENT,
      item: { kind: "auth", type: "jwt" },
    }),
    baoState({
      name: `openbao: policy ${role.policy}`,
      client: CLIENT,
      item: { kind: "policy", name: role.policy, file: policyFile },
    }),
    baoState({
      name: `openbao: jwt auth reads keys from ${vars.openbaoJwksUrl}`,
      client: CLIENT,
      item: {
        kind: "write",
        path: "auth/jwt/config",
        fields: {
          jwks_url: vars.openbaoJwksUrl,
          ...(vars.openbaoJwtIssuer ? { bound_issuer: vars.openbaoJwtIssuer } : {}),
        },
        fileFields: { jwks_ca_pem: CA_FILE },
      },
    }),
    baoState({
      name: `openbao: jwt role ${role.name}`,
      client: CLIENT,
      item: {
        kind: "write",
        path: `auth/jwt/role/${role.name}`,
        fields: {
          role_type: "jwt",
          user_claim: "sub",
          bound_audiences: role.boundAudiences,
          bound_subject: role.boundSubject,
          token_policies: [role.policy],
          token_ttl: role.tokenTtl,
        },
      },
    }),
  ];
}
