import type { Finding, LintLevel } from "../finding.js";
import { ruleFor } from "../rules/index.js";

/** A finding's level: its own, else its rule's. */
export function levelOf(finding: Finding): LintLevel {
  return finding.level ?? ruleFor(finding.rule).level;
}

/** The message with the hosts it holds for, as every format shows it. */
export function fullMessage(finding: Finding): string {
  const hosts = finding.hosts ?? [];
  if (hosts.length === 0) return finding.message;
  return `${finding.message} (host${hosts.length > 1 ? "s" : ""} ${hosts.join(", ")})`;
}
