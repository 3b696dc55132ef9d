import { definePlaybook, play } from "../engine/index.js";
import { devidCheck } from "../roles/devid/check.js";
import { devidRotation } from "../roles/devid/rotation.js";
import { hardening } from "../roles/hardening/index.js";
import { healthPlays } from "../roles/monitoring/index.js";

/**
 * Sprint 4: keep the stack healthy without anyone watching.
 *
 * 1. A daily systemd timer on every host checks its DevID certificate between runs.
 * 2. DevID rotation, one host at a time: certificates within their renewal window are re-issued
 *    for the same TPM key; a tpm_devid agent attests again with the new one behind health
 *    gates, or gets the old one back. Certificates outside the window are left alone.
 * 3. Hardening: key-only sshd, and the SPIRE agent in a systemd sandbox.
 * 4. The health report of the whole stack (playbooks/health.ts runs it alone); the run exits 3
 *    when anything is unhealthy.
 */
export default definePlaybook("Sprint 4: rotation and hardening", [
  play("all", { name: "DevID renewal check on a timer", roles: [devidCheck()] }),
  play("agents:servers", {
    name: "DevID certificates renewed inside their window",
    serial: 1,
    maxFailPercentage: 0,
    tasks: (vars, { host }) => devidRotation(vars, host),
  }),
  play("all", { name: "Hardening", roles: [hardening()] }),
  ...healthPlays(),
]);
