import { definePlaybook } from "../engine/index.js";
import { healthPlays } from "../roles/monitoring/index.js";

/**
 * The stack's health report, read-only: every service on every host (SPIRE server and agents,
 * DevIDs and their renewal check, step-ca, OpenBao sealed/active, nginx JWKS, certificate
 * expiries). Prints a HEALTH table after the recap (`--json` or `--report FILE` for machines)
 * and exits 3 when anything is unhealthy.
 */
export default definePlaybook("Tower of Omens: health", healthPlays());
