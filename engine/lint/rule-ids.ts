/**
 * The stable ids of every lint rule. A task's `lint.skip` is typed from this list, so a
 * misspelt id is a compile error rather than a skip that silently does nothing.
 */
export const LINT_RULE_IDS = [
  "type-error",
  "playbook-load",
  "inventory-schema",
  "role-vars",
  "var-misspelt",
  "task-invalid",
  "template-render",
  "template-parse",
  "template-nondeterministic",
  "command-changed",
  "risky-octal",
  "secret-plain-var",
  "secret-no-log",
  "handler-undefined",
  "handler-unused",
  "name-missing",
  "play-serial",
  "play-no-hosts",
  "lint-skip",
] as const;

/** One lint rule's id, e.g. `"command-changed"`. */
export type LintRuleId = (typeof LINT_RULE_IDS)[number];

/**
 * Rules no task can silence: each is a problem the engine itself refuses (before any host, or
 * halfway through the rollout), so a skip would only hide a certain failure.
 */
export const UNSKIPPABLE_RULE_IDS = [
  "type-error",
  "playbook-load",
  "inventory-schema",
  "role-vars",
  "task-invalid",
  "template-render",
  "risky-octal",
  "handler-undefined",
  "lint-skip",
] as const satisfies readonly LintRuleId[];

/** A rule id a task may list in `lint.skip`. */
export type SkippableRuleId = Exclude<LintRuleId, (typeof UNSKIPPABLE_RULE_IDS)[number]>;

/** True when a task's `lint.skip` may name this rule. */
export function isSkippable(id: string): boolean {
  return (
    (LINT_RULE_IDS as readonly string[]).includes(id) &&
    !(UNSKIPPABLE_RULE_IDS as readonly string[]).includes(id)
  );
}

/** How a task silences rules for itself; the reason is shown in review and is required. */
export interface LintSkip {
  skip: SkippableRuleId[];
  reason: string;
}
