import { definePlaybook, play } from "../engine/index.js";
import { openbao } from "../roles/openbao/index.js";
import { spireAgent } from "../roles/spire-agent/index.js";
import { spireServer } from "../roles/spire-server/index.js";
import { stepCa } from "../roles/step-ca/index.js";
import { tpmValidate } from "../roles/tpm-validate/index.js";

/**
 * Sprint 1: the foundation. Every host first proves its TPM and EK certificate; then the SPIRE
 * server (with the initial workload entries from the inventory), step-ca, OpenBao, and the
 * agents on auth and ca. The attestation phase comes from the inventory (`spireNodeAttestors`,
 * `spireAgentAttestor`): join_token with single-use tokens on a fresh stack, tpm_devid once
 * sprint 3 has moved the agents, so a re-run keeps what sprint 3 wrote.
 */
export default definePlaybook("Sprint 1: foundation", [
  play("all", { name: "TPM validation", roles: [tpmValidate()] }),
  play("servers", { name: "SPIRE server", roles: [spireServer()] }),
  play("stepca", { name: "step-ca", roles: [stepCa()] }),
  play("openbao", { name: "OpenBao", roles: [openbao()] }),
  play("agents", { name: "SPIRE agents", roles: [spireAgent()] }),
]);
