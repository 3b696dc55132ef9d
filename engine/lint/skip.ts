import { readFileSync } from "node:fs";
import type { Where } from "../errors.js";
import type { Play } from "../dsl/playbook.js";
import type { Task } from "../dsl/task.js";
import { placeKey, type Finding } from "./finding.js";
import { allRuns, allTasks, type LintModel } from "./model.js";
import { isSkippable, LINT_RULE_IDS, type LintSkip } from "./rule-ids.js";

/** A finding a task or play silenced, with the reason it gave. */
export interface Suppressed {
  finding: Finding;
  reason: string;
}

interface Owner {
  where: Where;
  lint: LintSkip;
  used: Set<string>;
}

/**
 * Drops findings their task or play skips with a reason, and reports skips that are
 * malformed (no reason, an unknown or unskippable rule) or silence nothing. A fixed loop's
 * skip also covers the tasks its items build, after their own skips.
 */
export function applySkips(
  findings: Finding[],
  model: LintModel,
): { active: Finding[]; suppressed: Suppressed[] } {
  const owners = skipOwners(model);
  const loops = enclosingLoops(model);
  const active: Finding[] = [];
  const suppressed: Suppressed[] = [];
  for (const finding of findings) {
    const subject = finding.task ?? finding.play;
    const candidates = subject
      ? [subject, loops.get(subject as Task)].map((s) => s && owners.get(placeKey(s.where)))
      : [owners.get(lineKey(finding.where.file, finding.where.line))];
    const owner = candidates.find((o) => o && silences(o.lint, finding.rule));
    if (owner) {
      owner.used.add(finding.rule);
      suppressed.push({ finding, reason: owner.lint.reason });
    } else active.push(finding);
  }
  return { active: [...active, ...[...owners.values()].flatMap(skipProblems)], suppressed };
}

/** The loop that built each item's task, for the tasks built from fixed items. */
function enclosingLoops(model: LintModel): Map<Task, Task> {
  const loops = new Map<Task, Task>();
  for (const { item } of allTasks(model)) if (item.loop) loops.set(item.task, item.loop.task);
  return loops;
}

function silences(lint: LintSkip, rule: string): boolean {
  return hasReason(lint) && isSkippable(rule) && (lint.skip as string[]).includes(rule);
}

function hasReason(lint: LintSkip): boolean {
  return typeof lint.reason === "string" && lint.reason.trim() !== "";
}

function skipOwners(model: LintModel): Map<string, Owner> {
  const owners = new Map<string, Owner>();
  const add = (subject: Task | Play, lint: LintSkip | undefined) => {
    const key = placeKey(subject.where);
    if (lint && !owners.has(key)) owners.set(key, { where: subject.where, lint, used: new Set() });
  };
  for (const { item } of allTasks(model)) add(item.task, item.task.options.lint);
  for (const run of allRuns(model))
    for (const plan of run.hosts)
      for (const loop of plan.loops) add(loop.task, loop.task.options.lint);
  for (const { playbook } of model.playbooks)
    for (const play of playbook.plays) add(play, play.lint);
  for (const inventory of model.inventories)
    for (const [key, owner] of inventorySkips(inventory.file)) owners.set(key, owner);
  return owners;
}

// The reason is required; a comment without one is read, and reported as a skip without reason.
const INLINE_SKIP = /#\s*omens-lint:\s*skip\s+([\w\s,-]+?)\s*(?::\s*(.*))?$/;

/**
 * Inventory values belong to no task, so an inventory line silences its own findings with a
 * comment: `joinToken: tok-lab-only  # omens-lint: skip secret-plain-var: a lab-only token`.
 */
function inventorySkips(file: string): [string, Owner][] {
  return readFileSync(file, "utf8")
    .split(/\r?\n/)
    .flatMap((text, index) => {
      const match = INLINE_SKIP.exec(text);
      if (!match) return [];
      const where = { file, line: index + 1 };
      const skip = (match[1] ?? "").split(/[\s,]+/).filter(Boolean) as LintSkip["skip"];
      const lint = { skip, reason: match[2] ?? "" };
      return [[lineKey(file, where.line), { where, lint, used: new Set<string>() }]];
    });
}

function lineKey(file: string | undefined, line: number | undefined): string {
  return `${file ?? "?"}:${line ?? 0}`;
}

function skipProblems(owner: Owner): Finding[] {
  const problem = (message: string, level: Finding["level"] = "error"): Finding => ({
    rule: "lint-skip",
    message,
    where: owner.where,
    ...(level === "warning" ? { level } : {}),
  });
  const ids = Array.isArray(owner.lint.skip) ? (owner.lint.skip as string[]) : [];
  const findings: Finding[] = [];
  if (!hasReason(owner.lint))
    findings.push(problem("lint.skip has no reason; give the reason a reviewer reads"));
  if (ids.length === 0) findings.push(problem("lint.skip names no rule"));
  for (const id of ids) {
    if (!(LINT_RULE_IDS as readonly string[]).includes(id))
      findings.push(
        problem(`lint.skip names "${id}", which is no rule (rules: ${LINT_RULE_IDS.join(", ")})`),
      );
    else if (!isSkippable(id))
      findings.push(problem(`rule ${id} cannot be skipped: the engine refuses what it finds`));
    else if (hasReason(owner.lint) && !owner.used.has(id))
      findings.push(
        problem(`lint.skip names ${id}, but ${id} finds nothing here: remove it`, "warning"),
      );
  }
  return findings;
}
