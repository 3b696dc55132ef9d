import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import type { Finding } from "../finding.js";
import type { LintReport } from "../lint.js";
import { isSkippable } from "../rule-ids.js";
import { RULES } from "../rules/index.js";
import { fullMessage, levelOf } from "./describe.js";
import { displayPath } from "./display-path.js";

const ROOT = "SRCROOT";

/** The report as a SARIF 2.1.0 log with rule metadata, for code-scanning tools. */
export function formatSarif(report: LintReport, root = process.cwd()): string {
  const version = (createRequire(import.meta.url)("../../../package.json") as { version: string })
    .version;
  const log = {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0",
    runs: [
      {
        tool: { driver: { name: "omens-play lint", version, rules: RULES.map(ruleDescriptor) } },
        originalUriBaseIds: { [ROOT]: { uri: pathToFileURL(root + "/").href } },
        results: [
          ...report.findings.map((f) => result(f, root)),
          ...report.suppressed.map((s) => ({
            ...result(s.finding, root),
            suppressions: [{ kind: "inSource", justification: s.reason }],
          })),
        ],
      },
    ],
  };
  return JSON.stringify(log, null, 2);
}

function ruleDescriptor(rule: (typeof RULES)[number]) {
  const task = `for one task with lint: { skip: ["${rule.id}"], reason: "..." }`;
  const line = `on its inventory line with the comment # omens-lint: skip ${rule.id}: <reason>`;
  const how = { task, inventory: line, "task or inventory": `${task}, or ${line}` };
  const skip = isSkippable(rule.id)
    ? `Silence it ${how[rule.silencedBy ?? "task"]}.`
    : "It cannot be skipped.";
  return {
    id: rule.id,
    name: rule.id.replace(/-(\w)/g, (_, c: string) => c.toUpperCase()),
    shortDescription: { text: rule.rationale },
    help: { text: `${rule.rationale} ${skip}` },
    defaultConfiguration: { level: rule.level },
    properties: { skippable: isSkippable(rule.id) },
  };
}

function result(finding: Finding, root: string) {
  return {
    ruleId: finding.rule,
    ruleIndex: RULES.findIndex((r) => r.id === finding.rule),
    level: levelOf(finding),
    message: { text: fullMessage(finding) },
    ...(finding.where.file ? { locations: [location(finding, root)] } : {}),
  };
}

function location(finding: Finding, root: string) {
  const { file = "", line, column } = finding.where;
  const shown = displayPath(file, root);
  const artifact =
    shown === file ? { uri: pathToFileURL(file).href } : { uri: encodeURI(shown), uriBaseId: ROOT };
  const region =
    line !== undefined && line >= 1
      ? { region: { startLine: line, ...(column && column >= 1 ? { startColumn: column } : {}) } }
      : {};
  return { physicalLocation: { artifactLocation: artifact, ...region } };
}
