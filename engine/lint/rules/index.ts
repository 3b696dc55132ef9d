import { bug } from "../../errors.js";
import { LINT_RULE_IDS, type LintRuleId } from "../rule-ids.js";
import type { Rule } from "../finding.js";
import { commandChanged } from "./command-changed.js";
import { handlerUndefined, handlerUnused } from "./handlers.js";
import { nameMissing } from "./name-missing.js";
import { playNoHosts, playSerial } from "./plays.js";
import { riskyOctal } from "./risky-octal.js";
import { secretNoLog, secretPlainVar } from "./secrets.js";
import { templateNondeterministic, templateParse, templateRender } from "./templates.js";
import { varMisspelt } from "./var-misspelt.js";

/** A rule whose findings are made while loading and building, not by a check of its own. */
function loading(id: LintRuleId, rationale: string): Rule {
  return { id, rationale, level: "error", check: () => [] };
}

const rules: Rule[] = [
  loading("type-error", "A playbook or role that does not type-check is wrong before it runs."),
  loading(
    "playbook-load",
    "A playbook that cannot be imported or exports no playbook runs nothing.",
  ),
  loading(
    "inventory-schema",
    "An inventory that does not match its schema is refused before any host is contacted.",
  ),
  loading(
    "role-vars",
    "A missing, misspelt or wrongly typed role variable fails the run for the host that lacks it.",
  ),
  varMisspelt,
  loading(
    "task-invalid",
    "Module arguments the module refuses, or a role that cannot build its tasks, fail the run.",
  ),
  templateRender,
  templateParse,
  templateNondeterministic,
  commandChanged,
  riskyOctal,
  secretPlainVar,
  secretNoLog,
  handlerUndefined,
  handlerUnused,
  nameMissing,
  playSerial,
  playNoHosts,
  loading(
    "lint-skip",
    "A skip must name skippable rules, give a reason, and silence something; otherwise it hides nothing or too much.",
  ),
];

/** Every rule, in the order of their ids. */
export const RULES: readonly Rule[] = LINT_RULE_IDS.map((id) => {
  const rule = rules.find((r) => r.id === id);
  if (!rule) throw bug(`lint rule ${id} has no definition`);
  return rule;
});

/** The rule with this id. */
export function ruleFor(id: LintRuleId): Rule {
  return RULES.find((r) => r.id === id) as Rule;
}
