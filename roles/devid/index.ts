import {
  command,
  defineRole,
  file,
  group,
  Type,
  type Static,
  type Task,
} from "../../engine/index.js";
import { quote } from "../../engine/shell.js";
import { stepCertificate, stepSigner, type StepCertificate } from "../common/step-cert.js";

/** Owner-hierarchy ECC SRK, the TCG high-range template SPIRE re-creates on every attestation. */
const SRK_ATTRIBUTES =
  "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt";
/** The DevID: a P-256 signing key with a non-null scheme, as SPIRE's tpm_devid plugin requires. */
const DEVID_ATTRIBUTES = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign";

/** Variables of the devid role. */
export const DevidVars = Type.Object(
  {
    tpmTcti: Type.String({ default: "device:/dev/tpmrm0", minLength: 1 }),
    /** The certificate's subject CN: the host's DNS name (node-alias selectors match on it). */
    devidCommonName: Type.String({ minLength: 1 }),
    devidDir: Type.String({ default: "/var/lib/tpm2-devid", pattern: "^/" }),
    devidHandle: Type.String({ default: "0x81010002", pattern: "^0x81[0-9a-fA-F]{6}$" }),
    stepCaHost: Type.String({ default: "ca" }),
    stepCaPort: Type.Integer({ default: 9000 }),
    devidProvisioner: Type.String({ default: "tpm-devid" }),
    /** Re-issue when fewer than this many days remain (the certificate lasts 90). */
    devidRenewDays: Type.Integer({ default: 30, minimum: 1, maximum: 89 }),
  },
  { additionalProperties: false },
);
export type DevidVars = Static<typeof DevidVars>;
type Vars = DevidVars;

/**
 * Gives the host a TPM-held DevID: an ECC P-256 signing key under the owner-hierarchy SRK
 * template SPIRE uses, its public and private blobs in SPIRE's format, the same key persisted at
 * 0x81010002 (for the CSR through the tpm2 OpenSSL provider), and a 90-day certificate from
 * step-ca's tpm-devid provisioner at devid.crt, root:tss 0640. An existing key is never made
 * again; blobs that do not match the persisted key stop the play.
 *
 * @example
 * play("all", { roles: [devid({ devidCommonName: "auth.funlab.casa" })] })
 */
export const devid = defineRole("devid", {
  vars: DevidVars,
  tasks: (vars) => [
    group({ name: "tss", system: true }),
    file({ path: vars.devidDir, state: "directory", owner: "root", group: "tss", mode: "0750" }),
    command({
      name: `devid: a DevID key in the TPM (${vars.devidHandle})`,
      shell: createKeyScript(vars),
      creates: `${vars.devidDir}/devid.priv.blob`,
    }),
    command({
      name: `devid: the key at ${vars.devidHandle} is the one in devid.pub.blob`,
      shell: sameKeyScript(vars),
      checkMode: false,
      changedWhen: () => false,
    }),
    ...devidCertificate(vars),
  ],
});

function tcti(vars: Vars): string {
  return `export TPM2TOOLS_TCTI=${quote(vars.tpmTcti)}`;
}

/**
 * domain-reference §2: SRK (H-2 template), child signing key, blobs (bare TPMT_PUBLIC and the
 * private buffer without its size prefix), persisted copy. Refuses to touch a handle already in
 * use. The blobs are moved into place last, so a failure leaves no half-made key behind.
 */
function createKeyScript(vars: Vars): string {
  const d = vars.devidDir;
  const h = vars.devidHandle;
  return [
    `set -eu; ${tcti(vars)}; umask 077`,
    `t=$(mktemp -d); trap 'tpm2_flushcontext -t >/dev/null 2>&1 || true; rm -rf "$t"' EXIT`,
    `if tpm2_getcap handles-persistent | grep -qi '${h}'; then echo "persistent handle ${h} is in use but ${d} holds no DevID blobs: refusing to overwrite it (evict it with tpm2_evictcontrol -C o -c ${h} if it is stale)" >&2; exit 1; fi`,
    `tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb -a '${SRK_ATTRIBUTES}' -c "$t/srk.ctx"`,
    `tpm2_flushcontext -t`,
    `tpm2_create -Q -C "$t/srk.ctx" -G ecc256:ecdsa-sha256 -g sha256 -a '${DEVID_ATTRIBUTES}' -u "$t/devid.tpm2b.pub" -r "$t/devid.tpm2b.priv"`,
    `tpm2_flushcontext -t`,
    `tpm2_load -Q -C "$t/srk.ctx" -u "$t/devid.tpm2b.pub" -r "$t/devid.tpm2b.priv" -c "$t/devid.ctx"`,
    `tpm2_flushcontext -t`,
    `tpm2_readpublic -Q -c "$t/devid.ctx" -f tpmt -o "$t/devid.pub.blob"`,
    `tpm2_flushcontext -t`,
    `tail -c +3 "$t/devid.tpm2b.priv" > "$t/devid.priv.blob"`,
    `tpm2_evictcontrol -Q -C o -c "$t/devid.ctx" ${h}`,
    `for f in devid.tpm2b.pub devid.tpm2b.priv devid.pub.blob; do install -m 0640 -o root -g tss "$t/$f" "${d}/$f"; done`,
    `install -m 0640 -o root -g tss "$t/devid.priv.blob" "${d}/devid.priv.blob.tmp" && mv "${d}/devid.priv.blob.tmp" "${d}/devid.priv.blob"`,
  ].join("\n");
}

/** Fails loudly when the persisted key and the stored public blob are different keys. */
function sameKeyScript(vars: Vars): string {
  const d = vars.devidDir;
  const h = vars.devidHandle;
  return [
    `${tcti(vars)}`,
    `[ -f ${d}/devid.pub.blob ] || { echo "no DevID key yet"; exit 0; }`,
    `t=$(mktemp); trap 'rm -f "$t"' EXIT`,
    `if ! tpm2_readpublic -Q -c ${h} -f tpmt -o "$t" 2>/dev/null; then echo "${d} holds DevID blobs but the TPM has no key at ${h}: the blobs and the handle disagree (was the TPM cleared?)" >&2; exit 1; fi`,
    `if ! cmp -s "$t" ${d}/devid.pub.blob; then echo "the key at ${h} is not the key in ${d}/devid.pub.blob: the blobs and the handle disagree; refusing to continue" >&2; exit 1; fi`,
    `echo "the key at ${h} matches devid.pub.blob"`,
  ].join("\n");
}

/**
 * The DevID certificate's tasks: re-issued for the same TPM key only when it is missing, within
 * `devidRenewDays` of expiry, for another key or another name. `extra` lets a playbook see the
 * install (its registered result) and keep the certificate it replaces.
 */
export function devidCertificate(
  vars: Vars,
  extra: Pick<StepCertificate, "register" | "backupTo"> = {},
): Task[] {
  return stepCertificate({
    ...extra,
    id: "devid",
    label: "devid",
    signer: stepSigner(vars.stepCaHost, vars.stepCaPort, vars.devidProvisioner),
    commonName: vars.devidCommonName,
    dnsNames: [vars.devidCommonName],
    certPath: `${vars.devidDir}/devid.crt`,
    owner: "root",
    group: "tss",
    mode: "0640",
    key: { kind: "tpm", handle: vars.devidHandle, tcti: vars.tpmTcti },
    renewBeforeSeconds: vars.devidRenewDays * 86400,
  });
}
