import { definePlaybook, play } from "../engine/index.js";
import { tpmValidate } from "../roles/tpm-validate/index.js";

/**
 * Sprint 1: the foundation. Every host first proves its TPM and EK certificate; the SPIRE
 * server, step-ca, OpenBao and the join_token agents follow in later plays.
 */
export default definePlaybook("Sprint 1: foundation", [
  play("all", { name: "TPM validation", roles: [tpmValidate()] }),
]);
