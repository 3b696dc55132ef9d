import {
  command,
  copy,
  deferred,
  defineRole,
  file,
  group,
  systemd,
  template,
  Type,
  user,
  type Static,
  type Task,
  type TaskContext,
} from "../../engine/index.js";
import { quote } from "../../engine/shell.js";
import { healthGate, registeredStdout } from "../common/gates.js";
import { installRelease, Release } from "../common/release.js";
import { STEP_CA_PATHS } from "../common/step-cert.js";
import { missingValueError, roleVarsError } from "../common/errors.js";
import { Port } from "../common/schema.js";

const Duration = Type.String({ pattern: "^([0-9]+(h|m|s))+$" });

/** A JWK provisioner; its key pair and password are made on the CA host and never leave it. */
const JwkProvisioner = Type.Object(
  {
    name: Type.String({ pattern: "^[a-z0-9-]+$" }),
    minTLSCertDuration: Type.Optional(Duration),
    defaultTLSCertDuration: Duration,
    maxTLSCertDuration: Duration,
  },
  { additionalProperties: false },
);

/** The intermediate's signing key: on a YubiKey (production) or a lab software key. */
const SigningKey = Type.Union([
  Type.Object(
    {
      kind: Type.Literal("yubikey"),
      /** The key URI step-ca signs with, e.g. "yubikey:slot-id=9c". */
      key: Type.String({ pattern: "^yubikey:" }),
      /** A root-only file on the CA host holding the YubiKey PIN (provisioned by hand). */
      pinFile: Type.String({ default: "/etc/step-ca/secrets/yubikey-pin" }),
    },
    { additionalProperties: false },
  ),
  Type.Object({ kind: Type.Literal("lab-software") }, { additionalProperties: false }),
]);

/** Variables of the step-ca role. */
export const StepCaVars = Type.Object(
  {
    stepCaRelease: Release,
    /** The step CLI: health checks and signing on the CA host. */
    stepRelease: Release,
    stepCaPort: Port(9000),
    /** Names and addresses the CA's own TLS certificate covers (127.0.0.1 is always added). */
    stepCaDnsNames: Type.Array(Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9.-]*$" }), {
      minItems: 1,
    }),
    stepCaName: Type.String({ default: "Tower of Omens" }),
    stepCaSigningKey: SigningKey,
    /** Controller files of the production root and intermediate (not used with lab-software). */
    stepCaRootFile: Type.String({ default: "" }),
    stepCaIntermediateFile: Type.String({ default: "" }),
    stepCaProvisioners: Type.Array(JwkProvisioner, {
      default: [
        { name: "tpm-devid", defaultTLSCertDuration: "2160h", maxTLSCertDuration: "2160h" },
        { name: "services", defaultTLSCertDuration: "720h", maxTLSCertDuration: "2160h" },
      ],
      minItems: 1,
    }),
    stepCaAcme: Type.Object(
      {
        enabled: Type.Boolean(),
        name: Type.String({ default: "acme" }),
        challenges: Type.Array(
          Type.Union([
            Type.Literal("http-01"),
            Type.Literal("dns-01"),
            Type.Literal("tls-alpn-01"),
          ]),
          { default: ["http-01"] },
        ),
        defaultTLSCertDuration: Duration,
        maxTLSCertDuration: Duration,
      },
      {
        default: {
          enabled: false,
          name: "acme",
          challenges: ["http-01"],
          defaultTLSCertDuration: "24h",
          maxTLSCertDuration: "168h",
        },
        additionalProperties: false,
      },
    ),
  },
  { additionalProperties: false },
);
type Vars = Static<typeof StepCaVars>;

/**
 * Runs step-ca: user, directories, pinned step-ca and step releases, the CA's certificates
 * (production ones copied in, or a lab root and intermediate made with openssl), one JWK
 * provisioner per entry (tpm-devid signs 90-day DevID certificates), ACME when enabled,
 * ca.json, a systemd unit and a health gate.
 *
 * @example
 * play("stepca", { roles: [stepCa({ stepCaSigningKey: { kind: "yubikey", key: "yubikey:slot-id=9c", pinFile: "/etc/step-ca/secrets/yubikey-pin" } })] })
 */
export const stepCa = defineRole("step-ca", {
  vars: StepCaVars,
  handlers: (vars) => ({
    restart: systemd({
      name: "step-ca: restart",
      unit: "step-ca",
      state: "restarted",
      daemonReload: true,
    }),
    healthy: caHealth(vars),
  }),
  tasks: (vars, { handlers }) => {
    const restart = [handlers.restart, handlers.healthy];
    return [
      group({ name: "step", system: true }),
      user({
        name: "step",
        system: true,
        group: "step",
        home: "/var/lib/step-ca",
        shell: "/usr/sbin/nologin",
        createHome: false,
      }),
      file({
        path: "/etc/step-ca",
        state: "directory",
        owner: "root",
        group: "step",
        mode: "0750",
      }),
      file({
        path: "/etc/step-ca/config",
        state: "directory",
        owner: "root",
        group: "step",
        mode: "0750",
      }),
      file({
        path: "/etc/step-ca/certs",
        state: "directory",
        owner: "root",
        group: "step",
        mode: "0755",
      }),
      file({
        path: STEP_CA_PATHS.secrets,
        state: "directory",
        owner: "root",
        group: "step",
        mode: "0750",
      }),
      file({
        path: "/var/lib/step-ca",
        state: "directory",
        owner: "step",
        group: "step",
        mode: "0700",
      }),
      ...installRelease({
        product: "step-ca",
        release: vars.stepCaRelease,
        binaries: ["bin/step-ca"],
        stripComponents: 1,
        notify: restart,
      }),
      ...installRelease({
        product: "step",
        release: vars.stepRelease,
        binaries: ["bin/step"],
        stripComponents: 1,
      }),
      ...caCertificates(vars, restart),
      ...vars.stepCaProvisioners.flatMap((p) => provisionerKey(p.name)),
      copy({
        name: `step-ca: ${STEP_CA_PATHS.config}`,
        dest: STEP_CA_PATHS.config,
        content: deferred((ctx) => renderCaJson(vars, ctx)),
        owner: "root",
        group: "step",
        mode: "0640",
        notify: restart,
      }),
      template({
        src: "step-ca.service.hbs",
        dest: "/etc/systemd/system/step-ca.service",
        mode: "0644",
        vars: { configPath: STEP_CA_PATHS.config },
        notify: restart,
      }),
      systemd({ unit: "step-ca", state: "started", enabled: true, daemonReload: true }),
      caHealth(vars),
    ];
  },
});

/** The intermediate key's path in ca.json: a YubiKey URI, or the lab's key file. */
function signingKeyRef(vars: Vars): string {
  return vars.stepCaSigningKey.kind === "yubikey"
    ? vars.stepCaSigningKey.key
    : `${STEP_CA_PATHS.secrets}/intermediate_ca_key`;
}

function caCertificates(vars: Vars, notify: Parameters<typeof copy>[0]["notify"]): Task[] {
  if (vars.stepCaSigningKey.kind === "yubikey") {
    if (!vars.stepCaRootFile || !vars.stepCaIntermediateFile)
      throw roleVarsError(
        "step-ca",
        `with a YubiKey key, "stepCaRootFile" and "stepCaIntermediateFile" must name the production certificates`,
      );
    return [
      copy({
        name: "step-ca: the production root",
        src: vars.stepCaRootFile,
        dest: STEP_CA_PATHS.root,
        mode: "0644",
        notify,
      }),
      copy({
        name: "step-ca: the production intermediate",
        src: vars.stepCaIntermediateFile,
        dest: STEP_CA_PATHS.intermediate,
        mode: "0644",
        notify,
      }),
    ];
  }
  if (vars.stepCaRootFile || vars.stepCaIntermediateFile)
    throw roleVarsError(
      "step-ca",
      `a lab-software key never goes with production certificates (stepCaRootFile/stepCaIntermediateFile are set)`,
    );
  const key = `${STEP_CA_PATHS.secrets}/intermediate_ca_key`;
  return [
    command({
      name: "step-ca: a lab root and intermediate (software keys, lab only)",
      shell: labPkiScript(vars.stepCaName),
      creates: STEP_CA_PATHS.intermediate,
    }),
    file({
      name: `step-ca: ${key} is root:step 0640`,
      path: key,
      owner: "root",
      group: "step",
      mode: "0640",
    }),
  ];
}

/** openssl only: an EC P-256 root (10 years) and intermediate (5 years, pathlen 0). */
function labPkiScript(name: string): string {
  const s = STEP_CA_PATHS.secrets;
  const root = STEP_CA_PATHS.root;
  const inter = STEP_CA_PATHS.intermediate;
  return [
    "set -e; umask 077; t=$(mktemp -d); trap 'rm -rf \"$t\"' EXIT",
    `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ${s}/root_ca_key`,
    `openssl req -x509 -new -key ${s}/root_ca_key -sha256 -days 3650 -subj ${quote(`/O=${name}/CN=${name} Lab Root CA`)} -addext basicConstraints=critical,CA:TRUE,pathlen:1 -addext keyUsage=critical,keyCertSign,cRLSign -out "$t/root.crt"`,
    `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ${s}/intermediate_ca_key`,
    `openssl req -new -key ${s}/intermediate_ca_key -subj ${quote(`/O=${name}/CN=${name} Lab Intermediate CA`)} -out "$t/inter.csr"`,
    `printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > "$t/ext"`,
    `openssl x509 -req -in "$t/inter.csr" -CA "$t/root.crt" -CAkey ${s}/root_ca_key -CAcreateserial -sha256 -days 1825 -extfile "$t/ext" -out "$t/inter.crt"`,
    `install -m 0644 "$t/root.crt" ${root}`,
    `install -m 0644 "$t/inter.crt" ${inter}.tmp && mv ${inter}.tmp ${inter}`,
  ].join("\n");
}

/** A provisioner's password and JWK pair, made once on the CA host, then read for ca.json. */
function provisionerKey(name: string): Task[] {
  const pw = STEP_CA_PATHS.passwordFile(name);
  const pub = `${STEP_CA_PATHS.secrets}/${name}.jwk.pub.json`;
  const priv = `${STEP_CA_PATHS.secrets}/${name}.jwk.priv.json`;
  const reg = jwkRegister(name);
  return [
    command({
      name: `step-ca: a password for provisioner ${name}`,
      shell: `umask 077 && openssl rand -base64 32 > ${pw}.tmp && mv ${pw}.tmp ${pw}`,
      creates: pw,
      noLog: true,
    }),
    command({
      name: `step-ca: a JWK pair for provisioner ${name}`,
      argv: ["step", "crypto", "jwk", "create", pub, priv, "--password-file", pw],
      creates: priv,
    }),
    command({
      name: `step-ca: read the ${name} public JWK`,
      shell: `cat ${pub} 2>/dev/null || true`,
      register: `${reg}Pub`,
      checkMode: false,
      changedWhen: () => false,
    }),
    command({
      name: `step-ca: read the ${name} encrypted JWK`,
      shell: `cat ${priv} 2>/dev/null || true`,
      register: `${reg}Priv`,
      checkMode: false,
      changedWhen: () => false,
      noLog: true,
    }),
  ];
}

function jwkRegister(name: string): string {
  return `jwk_${name.replace(/-/g, "_")}`;
}

/** ca.json, built as data so it is always valid JSON. Keys come from the files read above. */
export function renderCaJson(vars: Vars, ctx: TaskContext): string {
  const provisioners: unknown[] = vars.stepCaProvisioners.map((p) => ({
    type: "JWK",
    name: p.name,
    key: readJwk(ctx, `${jwkRegister(p.name)}Pub`),
    encryptedKey: compactJwe(registeredStdout(ctx, `${jwkRegister(p.name)}Priv`) ?? ""),
    claims: {
      minTLSCertDuration: p.minTLSCertDuration ?? "5m",
      maxTLSCertDuration: p.maxTLSCertDuration,
      defaultTLSCertDuration: p.defaultTLSCertDuration,
    },
  }));
  if (vars.stepCaAcme.enabled)
    provisioners.push({
      type: "ACME",
      name: vars.stepCaAcme.name,
      challenges: vars.stepCaAcme.challenges,
      claims: {
        defaultTLSCertDuration: vars.stepCaAcme.defaultTLSCertDuration,
        maxTLSCertDuration: vars.stepCaAcme.maxTLSCertDuration,
      },
    });
  const yubikey = vars.stepCaSigningKey.kind === "yubikey" ? vars.stepCaSigningKey : undefined;
  const config = {
    root: STEP_CA_PATHS.root,
    crt: STEP_CA_PATHS.intermediate,
    key: signingKeyRef(vars),
    ...(yubikey ? { kms: { type: "yubikey", uri: `yubikey:pin-source=${yubikey.pinFile}` } } : {}),
    address: `:${vars.stepCaPort}`,
    dnsNames: [...new Set([...vars.stepCaDnsNames, "127.0.0.1"])],
    logger: { format: "text" },
    db: { type: "badgerv2", dataSource: "/var/lib/step-ca/db" },
    authority: { provisioners },
    tls: { minVersion: 1.2, maxVersion: 1.3, renegotiation: false },
  };
  return JSON.stringify(config, null, 2) + "\n";
}

function readJwk(ctx: TaskContext, reg: string): unknown {
  const text = registeredStdout(ctx, reg)?.trim();
  if (text) return JSON.parse(text);
  if (ctx.check) return { note: "made in a real run" };
  throw missingValueError(`step-ca: the provisioner's public JWK is missing (${reg})`);
}

/** ca.json wants the JWE compact form; `step crypto jwk create` writes the JSON form. */
export function compactJwe(text: string): string {
  const trimmed = text.trim();
  if (trimmed === "") return "(made in a real run)";
  if (!trimmed.startsWith("{")) return trimmed;
  const jwe = JSON.parse(trimmed) as Record<string, string>;
  return [jwe.protected, jwe.encrypted_key, jwe.iv, jwe.ciphertext, jwe.tag]
    .map((p) => p ?? "")
    .join(".");
}

function caHealth(vars: Vars): Task {
  const probe = `step ca health --ca-url https://127.0.0.1:${vars.stepCaPort} --root ${STEP_CA_PATHS.root} 2>/dev/null | grep -qx ok`;
  return healthGate("step-ca: healthy", probe, 30, "step-ca");
}
