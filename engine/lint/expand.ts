import { dirname } from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { TObject } from "@sinclair/typebox";
import { inputError, OmensError, toOmensError, type Where } from "../errors.js";
import type { InventoryHost } from "../inventory/load.js";
import { getModule } from "../modules/index.js";
import {
  compileHost,
  loopItemTask,
  playContext,
  playHostVars,
  mergeRoleVars,
  roleVarProblems,
  type CompiledHost,
  type CompiledTask,
  type Predicate,
} from "../runner/compile.js";
import { hiddenLabel, maskArgumentValues } from "../runner/no-log.js";
import { hasDeferred } from "../dsl/deferred.js";
import type { Play } from "../dsl/playbook.js";
import type { RoleUse } from "../dsl/role.js";
import type { Step } from "../dsl/block.js";
import type { HandlerRef, Task } from "../dsl/task.js";
import { taskFinding, type Finding } from "./finding.js";
import { numericModes } from "./rules/numeric-modes.js";
import { varProblem } from "./role-vars.js";

/** One task as built for one host, with what lint needs to check it. */
export interface LintTask {
  task: Task;
  host: string;
  /** The variables templates and predicates see on this host. */
  vars: Record<string, unknown>;
  /** Folder that relative `src` paths are resolved against. */
  baseDir: string;
  role?: string;
  /** The module's normalised arguments; absent when they did not validate. */
  args?: unknown;
  /** Its label as the engine shows it ("file /etc/x") when it has no name. */
  label: string;
  /** For a handler: the id tasks notify it by, and its display name. */
  handler?: { id: string; name: string };
  /** The `when`s of the blocks and the loop around the task, which must hold before its own. */
  conditions: Predicate[];
  /** For a task a fixed loop built from one of its items: that loop. */
  loop?: LintTask;
}

/** Everything one play builds for one host; built leniently so every problem is seen. */
export interface HostPlan {
  host: InventoryHost;
  /** The tasks that run: a fixed loop is here as its items' tasks. */
  tasks: LintTask[];
  handlers: LintTask[];
  /**
   * Each loop over fixed items as written, with its own options (`notify`, `when`, `lint`),
   * which apply to the loop as a whole and so belong to none of its items' tasks.
   */
  loops: LintTask[];
}

const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: false });
const validators = new WeakMap<TObject, ValidateFunction>();

/**
 * A play's tasks for one host, as the runner's compile step builds them (blocks flattened,
 * fixed loops expanded). When the compile step refuses the play, it is built again leniently so
 * that every problem is found, not just the first.
 */
export function expandHost(
  play: Play,
  host: InventoryHost,
  playbookFile: string,
  problems: Finding[],
  peers: ReadonlyMap<string, InventoryHost>,
): HostPlan {
  let compiled: CompiledHost;
  try {
    compiled = compileHost(play, host, playbookFile, undefined, peers);
  } catch {
    return expandLeniently(play, host, playbookFile, problems, peers);
  }
  return fromCompiled(host, compiled);
}

function fromCompiled(host: InventoryHost, compiled: CompiledHost): HostPlan {
  const lintTask = (c: CompiledTask, conditions = c.conditions): LintTask => ({
    task: c.task,
    host: host.name,
    vars: c.vars,
    baseDir: c.baseDir,
    label: c.name,
    conditions,
    ...(c.role ? { role: c.role } : {}),
    ...(c.args === undefined ? {} : { args: c.args }),
  });
  const plan: HostPlan = { host, tasks: [], handlers: [], loops: [] };
  for (const c of compiled.tasks) {
    if (!c.loop?.fixed) {
      plan.tasks.push(lintTask(c));
      continue;
    }
    const loop = lintTask(c);
    plan.loops.push(loop);
    for (const item of c.loop.fixed)
      plan.tasks.push({ ...lintTask(item.task, withWhen(c.conditions, c.task)), loop });
  }
  plan.handlers = compiled.handlers.map((h) => ({
    ...lintTask(h),
    handler: { id: h.id, name: h.name },
  }));
  return plan;
}

/** Conditions with a block's or loop's own `when` added after those around it. */
export function withWhen(
  conditions: Predicate[],
  of: { options: { when?: Predicate } },
): Predicate[] {
  return of.options.when ? [...conditions, of.options.when] : conditions;
}

/**
 * Builds a play's tasks for one host the way the runner's compile step does, but records each
 * problem as a finding and goes on, so one lint run shows them all. The runner's compile stays
 * the reference: a test checks both agree on clean playbooks.
 */
export function expandLeniently(
  play: Play,
  host: InventoryHost,
  playbookFile: string,
  problems: Finding[],
  peers: ReadonlyMap<string, InventoryHost>,
): HostPlan {
  const hostVars = playHostVars(play, host);
  const plan: HostPlan = { host, tasks: [], handlers: [], loops: [] };
  for (const use of play.roles ?? []) expandRole(use, { play, host, hostVars, plan, problems });
  const playDir = dirname(playbookFile);
  const refs = addHandlers(plan, "play", play.handlers ?? {}, hostVars, playDir, problems);
  const tasks =
    typeof play.tasks === "function"
      ? build(
          () =>
            stepList((play.tasks as PlayTasksFn)(hostVars, playContext(play, host, refs, peers))),
          {
            where: play.where,
            host: host.name,
            what: `the play's tasks`,
            problems,
          },
        )
      : (play.tasks ?? []);
  const site = { vars: hostVars, baseDir: playDir, host: host.name, problems };
  placed(play.where, problems, () => addLinted(plan, lintedTasks(tasks ?? []), site));
  return plan;
}

type PlayTasksFn = Exclude<Play["tasks"], Step[] | undefined>;

/** A task builder's result, which must be a list of steps, as the runner requires. */
function stepList(result: unknown): Step[] {
  if (Array.isArray(result)) return result as Step[];
  throw inputError(
    "playbook",
    "TASK_INVALID",
    `it returned ${JSON.stringify(result)?.slice(0, 80) ?? String(result)}, not a list of tasks`,
  );
}

/** A task lint checks, with the `when`s of the blocks (and loop) around it. */
interface Linted {
  task: Task;
  conditions: Predicate[];
  /** For a loop over fixed items: the task each item builds, as the runner builds it. */
  items?: Linted[];
}

/**
 * The tasks lint checks in a list of steps: a block's tasks, rescue and always, and for a loop
 * over a fixed list, the task each item builds. A loop whose items are known only at run
 * time is checked as the loop task itself.
 */
function lintedTasks(steps: readonly Step[], conditions: Predicate[] = []): Linted[] {
  return steps.flatMap((step): Linted[] => {
    // Not a step at all: addTask reports what it is.
    if (!step || typeof step !== "object") return [{ task: step as Task, conditions }];
    if (step.kind === "block")
      return lintedTasks(
        [...step.tasks, ...step.rescue, ...step.always],
        withWhen(conditions, step),
      );
    const spec = step.loop;
    if (!spec || typeof spec.items === "function") return [{ task: step, conditions }];
    const built = spec.items.map((item, index) => {
      const task = spec.build(item, index);
      return task?.kind === "task" ? loopItemTask(step, task) : task;
    });
    return [{ task: step, conditions, items: lintedTasks(built, withWhen(conditions, step)) }];
  });
}

/** Adds linted tasks to the plan; a fixed loop goes to `loops`, its items' tasks to `tasks`. */
function addLinted(plan: HostPlan, linted: Linted[], site: TaskSite) {
  for (const { task, conditions, items } of linted) {
    if (!items) {
      addTask(plan.tasks, task, { ...site, conditions });
      continue;
    }
    const loop = addTask(plan.loops, task, { ...site, conditions });
    if (loop) loop.label = `${items[0]?.task?.module ?? "loop"} loop`;
    for (const item of items)
      addTask(plan.tasks, item.task, {
        ...site,
        conditions: item.conditions,
        ...(loop ? { loop } : {}),
      });
  }
}

interface RoleContext {
  play: Play;
  host: InventoryHost;
  hostVars: Record<string, unknown>;
  plan: HostPlan;
  problems: Finding[];
}

function expandRole(use: RoleUse, { play, host, hostVars, plan, problems }: RoleContext) {
  const vars = mergeRoleVars(use, hostVars);
  const validate = validatorFor(use.role.schema);
  if (!validate(vars)) {
    const errors = (validate.errors ?? []) as ErrorObject[];
    problems.push(
      ...roleVarProblems(errors, vars).map((subject) =>
        varProblem(subject, { use, host, vars, play }),
      ),
    );
    return;
  }
  const all = { ...hostVars, ...vars };
  const name = use.role.name;
  const context = { where: use.where, host: host.name, problems };
  const handlers = build(() => use.role.handlers?.(vars) ?? {}, {
    ...context,
    what: `the handlers of role ${name}`,
  });
  const refs = addHandlers(plan, name, handlers ?? {}, all, use.role.dir, problems);
  const tasks = build(() => stepList(use.role.tasks(vars, { handlers: refs, host: host.name })), {
    ...context,
    what: `the tasks of role ${name}`,
  });
  const site = { vars: all, baseDir: use.role.dir, host: host.name, problems, role: name };
  placed(use.where, problems, () => addLinted(plan, lintedTasks(tasks ?? []), site));
}

/** Runs `add`; a finding it makes about a value with no place of its own (null) is put at `at`. */
function placed(at: Where, problems: Finding[], add: () => void) {
  const before = problems.length;
  add();
  for (const problem of problems.slice(before))
    if (problem.where.file === undefined) problem.where = { ...at };
}

function validatorFor(schema: TObject): ValidateFunction {
  let validate = validators.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    validators.set(schema, validate);
  }
  return validate;
}

/** Handler ids and names follow the runner: `owner:key`, named by `name` or the key. */
function addHandlers(
  plan: HostPlan,
  owner: string,
  defined: Record<string, Task>,
  vars: Record<string, unknown>,
  baseDir: string,
  problems: Finding[],
): Record<string, HandlerRef> {
  const refs: Record<string, HandlerRef> = {};
  const role = owner === "play" ? undefined : owner;
  for (const [key, task] of Object.entries(defined)) {
    const id = `${owner}:${key}`;
    refs[key] = { kind: "handler-ref", id };
    const site = { vars, baseDir, host: plan.host.name, problems, conditions: [] };
    const built = addTask(plan.handlers, task, role ? { ...site, role } : site);
    if (built) built.handler = { id, name: task.options.name ?? (role ? `${role}: ${key}` : key) };
  }
  return refs;
}

/** Where a task is built: for which host, with which variables, inside which role. */
interface TaskSite {
  vars: Record<string, unknown>;
  baseDir: string;
  host: string;
  problems: Finding[];
  role?: string;
}

/** Where one task sits: the `when`s around it and, for a loop's item, the loop. */
interface TaskPlace extends TaskSite {
  conditions: Predicate[];
  loop?: LintTask;
}

function addTask(into: LintTask[], task: Task, place: TaskPlace): LintTask | undefined {
  const { vars, baseDir, host, problems, role } = place;
  const block = task as unknown as {
    kind?: string;
    tasks?: Task[];
    rescue?: Task[];
    always?: Task[];
  };
  if (block?.kind === "block") {
    for (const step of [...(block.tasks ?? []), ...(block.rescue ?? []), ...(block.always ?? [])])
      addTask(into, step, place);
    return undefined;
  }
  if (task?.kind !== "task") {
    const got = JSON.stringify(task)?.slice(0, 80) ?? String(task);
    problems.push({
      rule: "task-invalid",
      message: `expected a task built by a module function (file, copy, ...), got ${got}`,
      where: {},
      hosts: [host],
    });
    return undefined;
  }
  const { conditions, loop } = place;
  const lintTask: LintTask = { task, host, vars, baseDir, label: task.module, conditions };
  if (role) lintTask.role = role;
  if (loop) lintTask.loop = loop;
  // A loop is no module: its items' tasks are checked instead, or at run time.
  if (task.loop) {
    into.push(lintTask);
    return lintTask;
  }
  try {
    const module = getModule(task.module, task.where);
    // Deferred arguments are decided per host at run time; like the runner, check them then.
    if (!hasDeferred(task.args)) {
      lintTask.args = module.validate({ ...task.args }, task.where);
      lintTask.label = module.label(lintTask.args);
    }
    if (task.options.noLog === true) lintTask.label = hiddenLabel(module.name, task.where);
  } catch (error) {
    const masked = task.options.noLog === true ? maskArgumentValues(error, task.args) : error;
    const problem = invalidTask(masked, task, host);
    if (problem) problems.push(problem);
  }
  into.push(lintTask);
  return lintTask;
}

/** A task whose module refuses its arguments; numeric modes are the risky-octal rule's. */
function invalidTask(error: unknown, task: Task, host: string): Finding | undefined {
  const err = toOmensError(error, { code: "TASK_INVALID", family: "playbook" });
  if (err.code === "MODE_NUMERIC" && numericModes(task).length > 0) return undefined;
  const rule = err.code === "MODE_NUMERIC" ? "risky-octal" : "task-invalid";
  const hint = err.hint ? ` (${err.hint})` : "";
  return taskFinding(rule, task, err.message + hint, rule === "task-invalid" ? [host] : undefined);
}

interface BuildContext {
  where: Where;
  host: string;
  what: string;
  problems: Finding[];
}

/** Runs a role's or play's builder; a throw becomes a finding and the builder is skipped. */
function build<T>(builder: () => T, context: BuildContext): T | undefined {
  try {
    return builder();
  } catch (error) {
    const err =
      error instanceof OmensError
        ? error
        : toOmensError(error, { code: "BUILD", family: "playbook" });
    const where = err.where.file ? err.where : context.where;
    context.problems.push({
      rule: "task-invalid",
      message: `building ${context.what} failed: ${err.message}`,
      where: { file: where.file, line: where.line, column: where.column },
      hosts: [context.host],
    });
    return undefined;
  }
}
