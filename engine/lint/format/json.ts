import type { Finding } from "../finding.js";
import type { LintReport } from "../lint.js";
import { levelOf } from "./describe.js";
import { displayPath } from "./display-path.js";

/** The report as one JSON document (`--format json`). */
export function formatJson(report: LintReport): string {
  const errors = report.findings.filter((f) => levelOf(f) === "error").length;
  return JSON.stringify(
    {
      version: 1,
      findings: report.findings.map(plain),
      suppressed: report.suppressed.map((s) => ({ ...plain(s.finding), reason: s.reason })),
      summary: {
        errors,
        warnings: report.findings.length - errors,
        suppressed: report.suppressed.length,
        playbooks: report.playbooks.map((f) => displayPath(f)),
        inventories: report.inventories.map((f) => displayPath(f)),
      },
    },
    null,
    2,
  );
}

function plain(finding: Finding) {
  const { file, line, column } = finding.where;
  return {
    rule: finding.rule,
    level: levelOf(finding),
    message: finding.message,
    ...(file ? { file: displayPath(file) } : {}),
    ...(line !== undefined ? { line } : {}),
    ...(column !== undefined ? { column } : {}),
    ...(finding.hosts?.length ? { hosts: finding.hosts } : {}),
  };
}
