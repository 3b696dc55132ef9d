import { definePlaybook } from "../engine/index.js";
import foundation from "./sprint1-foundation.js";
import integration from "./sprint2-integration.js";
import hardened from "./sprint4-harden.js";

/**
 * The whole stack as it should stand: the plays of sprints 1, 2 and 4 (which ends with the
 * health checks). Sprint 3 is a one-time move; what it leaves is stated by the inventory's
 * attestation phase, which sprints 1 and 2 follow. `--check` over this playbook is the drift
 * report: a DRIFT section per host and role, `--fail-on-change` for exit 6, `--report FILE`.
 *
 * @example
 * omens-play playbooks/site.ts --check --fail-on-change --report drift.json
 */
export default definePlaybook("Tower of Omens: the whole stack", [
  ...foundation.plays,
  ...integration.plays,
  ...hardened.plays,
]);
