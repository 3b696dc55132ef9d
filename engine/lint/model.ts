import { OmensError, toOmensError } from "../errors.js";
import type { Inventory, InventoryHost } from "../inventory/load.js";
import { delegateSources } from "../runner/compile.js";
import { displayPath } from "./format/display-path.js";
import { shortSource } from "./role-vars.js";
import { matchHosts } from "../inventory/patterns.js";
import { preparePlaybook } from "../runner/run.js";
import { checkRollout, ROLLOUT_CODES } from "../runner/batches.js";
import type { Play, Playbook } from "../dsl/playbook.js";
import { expandHost, type HostPlan, type LintTask } from "./expand.js";
import { taskFinding, type Finding } from "./finding.js";

/**
 * What lint rules look at: every playbook as loaded, and each of its plays built for every
 * host it runs on in every inventory given. Nothing here contacts a host.
 */
export interface LintModel {
  inventories: Inventory[];
  playbooks: PlaybookModel[];
  /** Problems met while loading and building (type errors, role variables, module arguments). */
  problems: Finding[];
}

/** One playbook file and its plays, built once per inventory. */
export interface PlaybookModel {
  file: string;
  playbook: Playbook;
  runs: PlayRun[];
}

/** One play against one inventory: the hosts it selects, each with its built tasks. */
export interface PlayRun {
  play: Play;
  /** The play's position in its playbook, from 0. */
  index: number;
  inventory: Inventory;
  hosts: HostPlan[];
  unmatched: string[];
}

/** A task as built for one host, with the play run it belongs to. */
export interface TaskInRun {
  run: PlayRun;
  plan: HostPlan;
  item: LintTask;
  isHandler: boolean;
}

/** Builds a playbook's plays for every host of every inventory; problems go to `problems`. */
export function modelPlaybook(
  file: string,
  playbook: Playbook,
  inventories: Inventory[],
  problems: Finding[],
): PlaybookModel {
  const runs: PlayRun[] = [];
  for (const play of playbook.plays) rolloutProblem(play, problems);
  for (const inventory of inventories) {
    const before = problems.length;
    playbook.plays.forEach((play, index) => {
      const run = modelPlay(play, index, inventory, file, problems);
      if (run) runs.push(run);
    });
    if (problems.length === before) crossCheck(playbook, inventory, file, problems);
  }
  return { file, playbook, runs };
}

/** Engine errors that a lint rule reports in its own words; the cross-check leaves them. */
const REPORTED_BY_RULES = new Set([
  "MODE_NUMERIC",
  "HANDLER_UNKNOWN",
  "TEMPLATE_MISSING",
  "TEMPLATE_SYNTAX",
  ...ROLLOUT_CODES,
]);

/** A play's `serial` or `maxFailPercentage` that a run refuses, once per playbook. */
function rolloutProblem(play: Play, problems: Finding[]) {
  try {
    checkRollout(play);
  } catch (error) {
    const err = toOmensError(error, { code: "SERIAL_INVALID", family: "playbook" });
    problems.push({ rule: "task-invalid", message: err.message, where: play.where, play });
  }
}

/**
 * Prepares the playbook as a run would. Lint's own build found nothing wrong, so anything the
 * runner still refuses is a check lint does not know yet: it is reported as the engine says it.
 */
function crossCheck(playbook: Playbook, inventory: Inventory, file: string, problems: Finding[]) {
  try {
    preparePlaybook(playbook, inventory, file);
  } catch (error) {
    if (error instanceof OmensError && REPORTED_BY_RULES.has(error.code)) return;
    const rule =
      error instanceof OmensError && error.code === "ROLE_VAR_INVALID"
        ? "role-vars"
        : "task-invalid";
    const finding = errorFinding(rule, error, file);
    const host = error instanceof OmensError ? error.where.host : undefined;
    problems.push(host ? { ...finding, hosts: [host] } : finding);
  }
}

function modelPlay(
  play: Play,
  index: number,
  inventory: Inventory,
  file: string,
  problems: Finding[],
): PlayRun | undefined {
  let match: { hosts: string[]; unmatched: string[] };
  try {
    match = matchHosts(inventory, play.hosts);
  } catch (error) {
    const err = toOmensError(error, { code: "PATTERN", family: "playbook" });
    problems.push({ rule: "task-invalid", message: err.message, where: play.where, play });
    return undefined;
  }
  const hosts = match.hosts.map((name) =>
    expandHost(play, inventory.hosts.get(name) as InventoryHost, file, problems, inventory.hosts),
  );
  for (const plan of hosts) problems.push(...unknownDelegates(play, plan, inventory, file));
  return { play, index, inventory, hosts, unmatched: match.unmatched };
}

/**
 * Delegates the inventory does not have. A name read from inventory variables is reported at
 * the first of them, where the fix is; a name the playbook writes, at the task.
 */
function unknownDelegates(
  play: Play,
  plan: HostPlan,
  inventory: Inventory,
  file: string,
): Finding[] {
  return [...plan.tasks, ...plan.handlers].flatMap(({ task, label }) => {
    const target = task.options.delegateTo;
    if (typeof target !== "string" || inventory.hosts.has(target)) return [];
    const title = `task "${task.options.name ?? label}"`;
    const sources = delegateSources(play, plan.host, file, task, inventory.hosts);
    const [first] = sources;
    if (!first)
      return [
        taskFinding(
          "task-invalid",
          task,
          `${title} delegates to "${target}", which is not a host of the inventory`,
        ),
      ];
    const held = sources.map((s) => `"${s.name}" (set in ${shortSource(s.label)})`).join(" and ");
    const at = `${displayPath(task.where.file ?? "?")}:${task.where.line ?? "?"}`;
    const message = `variable ${held} is "${target}", which is not a host of the inventory; ${title} (${at}) delegates to it`;
    return [{ rule: "task-invalid", message, where: first.where, hosts: [plan.host.name] }];
  });
}

/** Every task and handler of every play run, host by host. */
export function* allTasks(model: LintModel): Generator<TaskInRun> {
  for (const playbook of model.playbooks)
    for (const run of playbook.runs)
      for (const plan of run.hosts) {
        for (const item of plan.tasks) yield { run, plan, item, isHandler: false };
        for (const item of plan.handlers) yield { run, plan, item, isHandler: true };
      }
}

/** Every play run of every playbook. */
export function* allRuns(model: LintModel): Generator<PlayRun> {
  for (const playbook of model.playbooks) yield* playbook.runs;
}

/** An OmensError as a finding of the given rule, at the place it names. */
export function errorFinding(rule: Finding["rule"], error: unknown, file: string): Finding {
  const err =
    error instanceof OmensError ? error : toOmensError(error, { code: "BUG", family: "bug" });
  const where = { file: err.where.file ?? file, line: err.where.line, column: err.where.column };
  return { rule, message: err.message, where };
}
