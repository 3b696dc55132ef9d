import {
  command,
  copy,
  deferred,
  file,
  stat,
  type HandlerRef,
  type Task,
  type TaskContext,
} from "../../engine/index.js";
import { quote, quoteArgv } from "../../engine/shell.js";
import { neededStdout, registeredStdout } from "./gates.js";

/** Where step-ca runs and how a certificate is signed there (all paths on the CA host). */
export interface StepSigner {
  /** Inventory name of the step-ca host: signing is delegated to it. */
  caHost: string;
  /** The CA's URL as seen from the CA host itself. */
  caUrl: string;
  /** The root certificate on the CA host. */
  caRoot: string;
  /** A JWK provisioner and the file holding its password, both on the CA host. */
  provisioner: string;
  passwordFile: string;
}

/** A certificate issued by step-ca for a key that stays on this host. */
export interface StepCertificate {
  /** Unique prefix for the names this helper registers. */
  id: string;
  /** Human label, e.g. "nginx TLS". */
  label: string;
  signer: StepSigner;
  commonName: string;
  dnsNames: string[];
  ipAddresses?: string[];
  certPath: string;
  owner: string;
  group: string;
  mode: string;
  /** The key: a software key file made here with openssl, or a TPM persistent handle. */
  key: { kind: "file"; path: string; owner: string; group: string; mode: string } | TpmKey;
  /** Re-issue when fewer than this many seconds of validity remain. */
  renewBeforeSeconds: number;
  /** `--not-after` for `step ca sign` (else the provisioner's default duration). */
  notAfter?: string;
  notify?: HandlerRef[];
  /** Registers the install task's result under this name (changed = a new certificate). */
  register?: string;
  /** Before a new certificate is installed, the current one is copied here (mode kept). */
  backupTo?: string;
}

/** A key held in the TPM at a persistent handle, used through the tpm2 OpenSSL provider. */
export interface TpmKey {
  kind: "tpm";
  handle: string;
  tcti: string;
}

/**
 * Tasks that keep a step-ca certificate in place: a key (never replaced once made), a freshness
 * probe (present, not expiring, same public key as the key, every name still covered), and only
 * when that probe says so a CSR, a signature on the CA host and the atomic install.
 */
export function stepCertificate(spec: StepCertificate): Task[] {
  const fresh = `${spec.id}Fresh`;
  const csr = `${spec.id}Csr`;
  const signed = `${spec.id}Signed`;
  const renew = (ctx: TaskContext) => registeredStdout(ctx, fresh)?.trim() !== "fresh";
  const issue = (ctx: TaskContext) => renew(ctx) && !ctx.check;
  return [
    ...keyTasks(spec),
    command({
      name: `${spec.label}: is ${spec.certPath} current`,
      shell: freshnessProbe(spec),
      register: fresh,
      checkMode: false,
      changedWhen: () => false,
    }),
    command({
      name: `${spec.label}: a certificate request for ${spec.commonName}`,
      shell: csrCommand(spec),
      register: csr,
      when: issue,
      changedWhen: () => false,
    }),
    command({
      name: `${spec.label}: step-ca signs the request (${spec.signer.provisioner})`,
      shell: signScript(spec),
      stdin: deferred((ctx) => neededStdout(ctx, csr, "certificate request")),
      delegateTo: spec.signer.caHost,
      register: signed,
      when: issue,
      lint: {
        skip: ["command-changed"],
        reason: "runs only when the probe says a certificate is due",
      },
    }),
    ...(spec.backupTo
      ? [
          command({
            name: `${spec.label}: the current certificate kept at ${spec.backupTo}`,
            shell: `if [ -f ${quote(spec.certPath)} ]; then cp -p ${quote(spec.certPath)} ${quote(spec.backupTo)}; fi`,
            when: issue,
            changedWhen: () => true,
          }),
        ]
      : []),
    copy({
      name: `${spec.label}: ${spec.certPath} is installed`,
      dest: spec.certPath,
      content: deferred((ctx) =>
        neededStdout(ctx, signed, `certificate from ${spec.signer.caHost}`),
      ),
      owner: spec.owner,
      group: spec.group,
      mode: spec.mode,
      when: renew,
      ...(spec.notify ? { notify: spec.notify } : {}),
      ...(spec.register ? { register: spec.register } : {}),
    }),
  ];
}

function keyTasks(spec: StepCertificate): Task[] {
  const key = spec.key;
  if (key.kind === "tpm") return [];
  const path = quote(key.path);
  const stated = `${spec.id}Key`;
  return [
    command({
      name: `${spec.label}: a P-256 key at ${key.path}`,
      shell: [
        "umask 077",
        `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ${path}.tmp`,
        `chown ${quote(`${key.owner}:${key.group}`)} ${path}.tmp`,
        `chmod ${key.mode} ${path}.tmp`,
        `mv ${path}.tmp ${path}`,
      ].join(" && "),
      creates: key.path,
    }),
    stat({ name: `${spec.label}: ${key.path}`, path: key.path, register: stated }),
    file({
      name: `${spec.label}: ${key.path} is ${key.owner}:${key.group} ${key.mode}`,
      path: key.path,
      owner: key.owner,
      group: key.group,
      mode: key.mode,
      when: (ctx) =>
        (ctx.registered[stated]?.stat as { exists?: boolean } | undefined)?.exists === true,
    }),
  ];
}

/** Prints "fresh" or "renew"; reads only. */
function freshnessProbe(spec: StepCertificate): string {
  const crt = quote(spec.certPath);
  const names = [
    ...spec.dnsNames.map(
      (n) => `openssl x509 -in ${crt} -noout -checkhost ${quote(n)} | grep -q ' does match'`,
    ),
    ...(spec.ipAddresses ?? []).map(
      (ip) => `openssl x509 -in ${crt} -noout -checkip ${quote(ip)} | grep -q ' does match'`,
    ),
  ];
  const checks = [
    `[ -f ${crt} ]`,
    `openssl x509 -in ${crt} -noout -checkend ${spec.renewBeforeSeconds} >/dev/null`,
    `[ "$(openssl x509 -in ${crt} -noout -pubkey)" = "$(${publicKeyCommand(spec)})" ]`,
    ...names,
  ];
  const decide = `if ${checks.join(" && ")}; then echo fresh; else echo renew; fi`;
  const key = spec.key;
  if (key.kind === "file") return decide;
  // A TPM that does not answer must not read as "a certificate for another key: renew".
  const tcti = quote(key.tcti);
  return `if ! TPM2TOOLS_TCTI=${tcti} tpm2_getcap properties-fixed >/dev/null 2>&1; then echo "the TPM does not answer (TCTI ${key.tcti.replace(/["\\$`]/g, "")}): cannot tell whether ${spec.certPath.replace(/["\\$`]/g, "")} is for its key" >&2; exit 1; fi; ${decide}`;
}

function publicKeyCommand(spec: StepCertificate): string {
  const key = spec.key;
  if (key.kind === "file") return `openssl pkey -in ${quote(key.path)} -pubout 2>/dev/null`;
  return `t=$(mktemp); TPM2TOOLS_TCTI=${quote(key.tcti)} tpm2_readpublic -c ${key.handle} -f pem -o "$t" >/dev/null 2>&1 && cat "$t"; rm -f "$t"`;
}

function csrCommand(spec: StepCertificate): string {
  const sans = [
    ...spec.dnsNames.map((n) => `DNS:${n}`),
    ...(spec.ipAddresses ?? []).map((ip) => `IP:${ip}`),
  ];
  const common = [
    "-subj",
    `/CN=${spec.commonName}`,
    ...(sans.length ? ["-addext", `subjectAltName=${sans.join(",")}`] : []),
  ];
  const key = spec.key;
  if (key.kind === "file")
    return quoteArgv(["openssl", "req", "-new", "-key", key.path, ...common]);
  const argv = [
    "openssl",
    "req",
    "-new",
    "-provider",
    "tpm2",
    "-provider",
    "default",
    "-key",
    `handle:${key.handle}`,
    ...common,
  ];
  return `TPM2OPENSSL_TCTI=${quote(key.tcti)} ${quoteArgv(argv)}`;
}

/** Runs on the CA host: the CSR arrives on stdin, the chain (leaf then intermediate) leaves on stdout. */
function signScript(spec: StepCertificate): string {
  const s = spec.signer;
  const argv = [
    "step",
    "ca",
    "sign",
    "$d/req.csr",
    "$d/out.crt",
    "--provisioner",
    s.provisioner,
    "--provisioner-password-file",
    s.passwordFile,
    "--ca-url",
    s.caUrl,
    "--root",
    s.caRoot,
    ...(spec.notAfter ? ["--not-after", spec.notAfter] : []),
  ];
  const line = argv.map((a) => (a.startsWith("$d/") ? `"${a}"` : quote(a))).join(" ");
  return `set -e; d=$(mktemp -d); trap 'rm -rf "$d"' EXIT; cat > "$d/req.csr"; ${line} >&2; cat "$d/out.crt"`;
}

/**
 * Copies the step-ca root from the CA host to this host. The probe only reads, so it also runs
 * in check mode; before the CA exists a placeholder stands in for the file's content.
 */
export function stepRoot(opts: {
  id: string;
  caHost: string;
  caRoot: string;
  dest: string;
  owner?: string;
  group?: string;
  mode?: string;
  notify?: HandlerRef[];
}): Task[] {
  const reg = `${opts.id}Root`;
  return [
    command({
      name: `step-ca root: read ${opts.caRoot} on ${opts.caHost}`,
      shell: `cat ${quote(opts.caRoot)} 2>/dev/null || true`,
      delegateTo: opts.caHost,
      register: reg,
      checkMode: false,
      changedWhen: () => false,
    }),
    copy({
      name: `step-ca root: ${opts.dest}`,
      dest: opts.dest,
      content: deferred((ctx) => neededStdout(ctx, reg, `step-ca root from ${opts.caHost}`)),
      owner: opts.owner ?? "root",
      group: opts.group ?? "root",
      mode: opts.mode ?? "0644",
      ...(opts.notify ? { notify: opts.notify } : {}),
    }),
  ];
}

/** Where the step-ca role keeps things on the CA host; other roles sign through these. */
export const STEP_CA_PATHS = {
  root: "/etc/step-ca/certs/root_ca.crt",
  intermediate: "/etc/step-ca/certs/intermediate_ca.crt",
  config: "/etc/step-ca/config/ca.json",
  secrets: "/etc/step-ca/secrets",
  passwordFile: (provisioner: string) => `/etc/step-ca/secrets/${provisioner}.password`,
} as const;

/** The signer for a provisioner of the step-ca role running on `caHost` at `port`. */
export function stepSigner(caHost: string, port: number, provisioner: string): StepSigner {
  return {
    caHost,
    caUrl: `https://127.0.0.1:${port}`,
    caRoot: STEP_CA_PATHS.root,
    provisioner,
    passwordFile: STEP_CA_PATHS.passwordFile(provisioner),
  };
}
