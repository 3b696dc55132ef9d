import { defineRole, tpmInfo, Type, x509 } from "../../engine/index.js";
import { quote } from "../../engine/shell.js";

/** Variables of the tpm-validate role. */
export const TpmValidateVars = Type.Object(
  {
    /** How tpm2-tools reach the TPM on the host. */
    tpmTcti: Type.String({ default: "device:/dev/tpmrm0", minLength: 1 }),
    /** Controller path of the PEM CA certificates the EK certificate must chain to. */
    ekCaBundle: Type.String({ minLength: 1 }),
    /** NV index of the RSA EK certificate (TCG EK credential profile, low range). */
    ekCertNvIndex: Type.String({ default: "0x01c00002", pattern: "^0x[0-9a-fA-F]{8}$" }),
    /** Fail when the EK certificate expires within this many days. */
    ekMinDaysLeft: Type.Integer({ default: 30, minimum: 0 }),
  },
  { additionalProperties: false },
);

/**
 * Proves a host's TPM 2.0 answers and that its RSA EK certificate chains to the configured
 * CAs and is not about to expire. Read-only: it never changes a host.
 *
 * @example
 * play("all", { roles: [tpmValidate()] })
 */
export const tpmValidate = defineRole("tpm-validate", {
  vars: TpmValidateVars,
  tasks: (vars) => [
    tpmInfo({ name: "the TPM answers and is a TPM 2.0", tcti: vars.tpmTcti, register: "tpm" }),
    x509({
      name: "the EK certificate chains to the configured CAs",
      command: `TPM2TOOLS_TCTI=${quote(vars.tpmTcti)} tpm2_nvread ${vars.ekCertNvIndex} -C o 2>/dev/null`,
      describe: `TPM NV index ${vars.ekCertNvIndex}`,
      caBundle: vars.ekCaBundle,
      minDaysLeft: vars.ekMinDaysLeft,
      register: "ekCert",
    }),
  ],
});
