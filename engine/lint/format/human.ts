import type { LintReport } from "../lint.js";
import type { Finding } from "../finding.js";
import { fullMessage, levelOf } from "./describe.js";
import { displayPath } from "./display-path.js";

/** `file:line:col rule-id level: message`, one line per finding, then a summary line. */
export function formatHuman(report: LintReport): string[] {
  const lines = report.findings.map(
    (f) => `${location(f)} ${f.rule} ${levelOf(f)}: ${fullMessage(f)}`,
  );
  return [...lines, summary(report)];
}

function location(finding: Finding): string {
  const { file, line, column } = finding.where;
  if (!file) return "-";
  return [displayPath(file), line, line === undefined ? undefined : column]
    .filter((p) => p !== undefined)
    .join(":");
}

function summary(report: LintReport): string {
  const errors = report.findings.filter((f) => levelOf(f) === "error").length;
  const warnings = report.findings.length - errors;
  const skipped = report.suppressed.length ? `, ${report.suppressed.length} suppressed` : "";
  const scope = `${report.playbooks.length} playbook(s), ${report.inventories.length} inventory file(s)`;
  return `${errors} error(s), ${warnings} warning(s)${skipped} in ${scope}`;
}
