import { dirname } from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { TObject } from "@sinclair/typebox";
import { inputError, OmensError, toOmensError, type Where } from "../errors.js";
import type { InventoryHost } from "../inventory/load.js";
import { getModule } from "../modules/index.js";
import {
  compileHost,
  playContext,
  playHostVars,
  mergeRoleVars,
  roleVarProblems,
  type CompiledHost,
  type CompiledTask,
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
}

/** Everything one play builds for one host; built leniently so every problem is seen. */
export interface HostPlan {
  host: InventoryHost;
  tasks: LintTask[];
  handlers: LintTask[];
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
  const lintTask = (c: CompiledTask): LintTask => ({
    task: c.task,
    host: host.name,
    vars: c.vars,
    baseDir: c.baseDir,
    label: c.name,
    ...(c.role ? { role: c.role } : {}),
    ...(c.args === undefined ? {} : { args: c.args }),
  });
  const tasks = compiled.tasks.flatMap((c) =>
    c.loop?.fixed ? c.loop.fixed.map((item) => lintTask(item.task)) : [lintTask(c)],
  );
  const handlers = compiled.handlers.map((h) => ({
    ...lintTask(h),
    handler: { id: h.id, name: h.name },
  }));
  return { host, tasks, handlers };
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
  const plan: HostPlan = { host, tasks: [], handlers: [] };
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
  placed(play.where, problems, () => {
    for (const task of lintedTasks(tasks ?? []))
      addTask(plan.tasks, task, hostVars, playDir, host.name, problems);
  });
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

/**
 * The tasks lint checks in a list of steps: a block's tasks, rescue and always, and for a loop
 * over a fixed list, the task each item builds. A loop whose items are known only at run
 * time is checked as the loop task itself.
 */
function lintedTasks(steps: readonly Step[]): Task[] {
  return steps.flatMap((step): Task[] => {
    // Not a step at all: addTask reports what it is.
    if (!step || typeof step !== "object") return [step as Task];
    if (step.kind === "block") return lintedTasks([...step.tasks, ...step.rescue, ...step.always]);
    const items = step.loop?.items;
    if (!step.loop || typeof items === "function" || items === undefined) return [step];
    return lintedTasks(items.map((item, index) => step.loop?.build(item, index) as Task));
  });
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
  placed(use.where, problems, () => {
    for (const task of lintedTasks(tasks ?? []))
      addTask(plan.tasks, task, all, use.role.dir, host.name, problems, name);
  });
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
    const built = addTask(plan.handlers, task, vars, baseDir, plan.host.name, problems, role);
    if (built) built.handler = { id, name: task.options.name ?? (role ? `${role}: ${key}` : key) };
  }
  return refs;
}

function addTask(
  into: LintTask[],
  task: Task,
  vars: Record<string, unknown>,
  baseDir: string,
  host: string,
  problems: Finding[],
  role?: string,
): LintTask | undefined {
  const block = task as unknown as {
    kind?: string;
    tasks?: Task[];
    rescue?: Task[];
    always?: Task[];
  };
  if (block?.kind === "block") {
    for (const step of [...(block.tasks ?? []), ...(block.rescue ?? []), ...(block.always ?? [])])
      addTask(into, step, vars, baseDir, host, problems, role);
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
  const lintTask: LintTask = { task, host, vars, baseDir, label: task.module };
  if (role) lintTask.role = role;
  try {
    const module = getModule(task.module, task.where);
    // Deferred arguments are decided per host at run time; like the runner, check them then.
    if (!hasDeferred(task.args) && task.loop === undefined) {
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
