import { dirname } from "node:path";
import { Ajv, type ErrorObject } from "ajv";
import { bug, inputError, OmensError, toOmensError, type Where } from "../errors.js";
import { variableSource, type InventoryHost } from "../inventory/load.js";
import { keyPath, pointerKeys } from "../inventory/schema.js";
import { nearNames } from "../near-names.js";
import { getModule } from "../modules/index.js";
import { hasDeferred } from "../dsl/deferred.js";
import { hiddenLabel, maskArgumentValues } from "./no-log.js";
import type { AnyModule } from "../modules/types.js";
import type { Play, PlayContext } from "../dsl/playbook.js";
import type { RoleUse } from "../dsl/role.js";
import type { Block, Step } from "../dsl/block.js";
import type { HandlerRef, LoopSpec, Task, TaskContext } from "../dsl/task.js";

/** A task ready to run on one host: module found, arguments validated, handlers resolved. */
export interface CompiledTask {
  task: Task;
  module: AnyModule;
  /** Validated arguments; undefined when some are deferred (validated when the task runs). */
  args: unknown;
  /** Some arguments are computed per host at run time (`deferred`). */
  deferred?: boolean;
  name: string;
  /** Variables for templates and predicates: host vars, play vars, then role vars. */
  vars: Record<string, unknown>;
  /** Folder that relative `src` paths are resolved against. */
  baseDir: string;
  role?: string;
  notify: string[];
  /** The task's tags with those of the blocks around it. */
  tags: string[];
  /** `when` predicates of the blocks around the task, checked before its own. */
  conditions: Predicate[];
  /** Through sudo or not: the task's own setting, else its block's, else the host's. */
  become?: boolean;
  /** Set for a `loop` task: its items, built now when they are a fixed array. */
  loop?: CompiledLoop;
}

/** A `when`: the task runs on a host only when it holds. */
export type Predicate = (ctx: TaskContext) => boolean;

/** A loop's items: built and validated at compile time when fixed, else when the task runs. */
export interface CompiledLoop {
  spec: LoopSpec;
  /** The items' tasks, when the items are a fixed array. */
  fixed?: CompiledItem[];
  /** Compiles one item's task when the items come from a function of the host's context. */
  compile(item: unknown, index: number): CompiledItem;
}

/** One item of a loop with the task built from it. */
export interface CompiledItem {
  item: unknown;
  label: string;
  task: CompiledTask;
}

/** A handler: a task run once at the end of a play on the hosts that notified it. */
export interface CompiledHandler extends CompiledTask {
  id: string;
}

/** Which section of a block an entry sits in. */
export interface Frame {
  block: number;
  section: "tasks" | "rescue" | "always";
}

/**
 * One step of a host's program. Blocks are laid out flat, `tasks`, then `rescue`, then
 * `always`, with two control entries; every jump goes forward, which is what lets the runner
 * keep hosts in step by always running the lowest position first.
 */
export type Entry =
  | { kind: "task"; task: CompiledTask; scope: readonly Frame[] }
  /** End of a block's `tasks`: a host that did not fail skips the `rescue` section. */
  | { kind: "skip-rescue"; block: number }
  /** End of a block's `always`: a failure the block did not rescue goes on outwards. */
  | { kind: "block-end"; block: number; scope: readonly Frame[] };

/** Where each block's sections start in the program. */
export interface BlockLayout {
  name: string;
  /** Undefined when the block has no rescue section. */
  rescueAt?: number;
  alwaysAt: number;
  /** The block-end entry. */
  endAt: number;
}

export interface CompiledHost {
  /** Every task of the program in order (what `--list-tasks` shows). */
  tasks: CompiledTask[];
  /** In definition order: the order they run in. */
  handlers: CompiledHandler[];
  program: Entry[];
  blocks: BlockLayout[];
}

/** Decides from a task's tags whether it is part of this run (`--tags`, `--skip-tags`). */
export type TagSelector = (tags: readonly string[]) => boolean;

// Role schemas come from TypeBox, which only builds valid ones; checking each against the
// meta-schema means compiling that first, about 200 ms of every run.
const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: false, validateSchema: false });

interface Builder {
  host: string;
  handlers: CompiledHandler[];
  pendingNotify: { task: CompiledTask; refs: (HandlerRef | string)[] }[];
  program: Entry[];
  blocks: BlockLayout[];
  select: TagSelector;
}

interface Inherited {
  vars: Record<string, unknown>;
  baseDir: string;
  role?: string;
  tags: string[];
  conditions: Predicate[];
  become?: boolean;
  scope: readonly Frame[];
}

/**
 * Builds every task of a play for one host, validating role variables and module arguments.
 * Runs before any host is contacted, so input mistakes cost nothing.
 */
export function compileHost(
  play: Play,
  host: InventoryHost,
  playbookFile: string,
  select: TagSelector = () => true,
  peers: ReadonlyMap<string, InventoryHost> = new Map(),
): CompiledHost {
  const hostVars = playHostVars(play, host);
  const b: Builder = {
    host: host.name,
    handlers: [],
    pendingNotify: [],
    program: [],
    blocks: [],
    select,
  };
  const top = { tags: [], conditions: [], scope: [] };
  for (const use of play.roles ?? []) {
    const vars = roleVars(use, host, hostVars, play);
    const merged = { ...hostVars, ...vars };
    const own = buildHandlers(
      b,
      use.role.name,
      use.role.handlers?.(vars) ?? {},
      merged,
      use.role.dir,
    );
    const built = guard(
      () => use.role.tasks(vars, { handlers: own, host: host.name }),
      use.where,
      host.name,
    );
    addSteps(b, built, { ...top, vars: merged, baseDir: use.role.dir, role: use.role.name });
  }
  const baseDir = dirname(playbookFile);
  const playHandlers = buildHandlers(b, "play", play.handlers ?? {}, hostVars, baseDir);
  const playTasks =
    typeof play.tasks === "function"
      ? guard(
          () =>
            (play.tasks as Exclude<Play["tasks"], Step[] | undefined>)(
              hostVars,
              playContext(play, host, playHandlers, peers),
            ),
          play.where,
          host.name,
        )
      : (play.tasks ?? []);
  addSteps(b, playTasks, { ...top, vars: hostVars, baseDir });
  for (const { task, refs } of b.pendingNotify)
    task.notify = refs.map((ref) => resolveHandler(ref, b.handlers, task, host.name));
  const tasks = b.program.flatMap((e) => (e.kind === "task" ? [e.task] : []));
  return { tasks, handlers: b.handlers, program: b.program, blocks: b.blocks };
}

/** What a play's tasks see of a host: its inventory variables, the play's vars, its name and groups. */
export function playHostVars(play: Play, host: InventoryHost): Record<string, unknown> {
  return { ...host.vars, ...play.vars, inventoryHostname: host.name, groupNames: host.groups };
}

/** The context a play's `tasks` function gets on `host`; `peers` are the inventory's hosts. */
export function playContext<H extends string>(
  play: Play,
  host: InventoryHost,
  handlers: Record<H, HandlerRef>,
  peers: ReadonlyMap<string, InventoryHost>,
): PlayContext<H> {
  const hostVars = (name: string) => {
    const peer = name === host.name ? host : peers.get(name);
    if (peer) return playHostVars(play, peer);
    const near = nearNames(name, peers.keys());
    throw inputError(
      "playbook",
      "UNKNOWN_HOST",
      `hostVars(${JSON.stringify(name)}): the inventory has no host "${name}"`,
      undefined,
      near.length > 0 ? `did you mean ${near.map((n) => `"${n}"`).join(" or ")}?` : undefined,
    );
  };
  return { handlers, host: host.name, hostVars };
}

function guard<T>(build: () => T, where: Where, host: string): T {
  try {
    return build();
  } catch (error) {
    if (error instanceof OmensError) throw error.at({ ...where, host });
    throw toOmensError(error, {
      code: "PLAYBOOK_BUILD",
      family: "playbook",
      where: { ...where, host },
    });
  }
}

function addSteps(b: Builder, steps: readonly Step[], inherited: Inherited) {
  if (!Array.isArray(steps)) throw notAStep(steps, b.host);
  for (const step of steps) {
    if (step?.kind === "block") addBlock(b, step, inherited);
    else addTask(b, step, inherited);
  }
}

function addTask(b: Builder, task: Task, inherited: Inherited) {
  const compiled = compileTask(b, task, inherited);
  if (task.options.guard === true || b.select(compiled.tags))
    b.program.push({ kind: "task", task: compiled, scope: inherited.scope });
}

/** Lays a block out flat: tasks, skip-rescue, rescue, always, block-end (see {@link Entry}). */
function addBlock(b: Builder, block: Block, outer: Inherited) {
  const id = b.blocks.length;
  const layout: BlockLayout = { name: block.options.name ?? "block", alwaysAt: 0, endAt: 0 };
  b.blocks.push(layout);
  const inner = (section: Frame["section"]): Inherited => ({
    ...outer,
    tags: [...outer.tags, ...(block.options.tags ?? [])],
    conditions: block.options.when ? [...outer.conditions, block.options.when] : outer.conditions,
    ...(block.options.become === undefined ? {} : { become: block.options.become }),
    scope: [...outer.scope, { block: id, section }],
  });
  addSteps(b, block.tasks, inner("tasks"));
  b.program.push({ kind: "skip-rescue", block: id });
  if (block.rescue.length > 0) {
    layout.rescueAt = b.program.length;
    addSteps(b, block.rescue, inner("rescue"));
  }
  layout.alwaysAt = b.program.length;
  addSteps(b, block.always, inner("always"));
  layout.endAt = b.program.length;
  b.program.push({ kind: "block-end", block: id, scope: outer.scope });
}

function notAStep(step: unknown, host: string) {
  return inputError(
    "playbook",
    "TASK_INVALID",
    `expected a task built by a module function (file, copy, ...) or a block, got ${JSON.stringify(step)?.slice(0, 80)}`,
    { host },
  );
}

function compileTask(b: Builder, task: Task, inherited: Inherited): CompiledTask {
  if (task?.kind !== "task") throw notAStep(task, b.host);
  const where = { ...task.where, host: b.host };
  const become = task.options.become ?? inherited.become;
  const common = {
    task,
    vars: inherited.vars,
    baseDir: inherited.baseDir,
    notify: [],
    tags: [...new Set([...inherited.tags, ...(task.options.tags ?? [])])],
    conditions: inherited.conditions,
    ...(become === undefined ? {} : { become }),
    ...(inherited.role ? { role: inherited.role } : {}),
  };
  const compiled: CompiledTask = task.loop
    ? compileLoop(b, task, task.loop, common, inherited)
    : { ...common, ...moduleOf(task, where, inherited.role, inherited.baseDir) };
  const notify = task.options.notify;
  if (notify !== undefined)
    b.pendingNotify.push({ task: compiled, refs: Array.isArray(notify) ? notify : [notify] });
  return compiled;
}

function moduleOf(task: Task, where: Where, role: string | undefined, baseDir: string) {
  const module = getModule(task.module, where);
  const named: Where =
    task.options.name === undefined ? where : { ...where, task: task.options.name };
  const deferred = hasDeferred(task.args);
  const args = deferred ? undefined : validateArgs(module, task, named);
  if (args !== undefined) module.validateSources?.(args, baseDir, named);
  const label =
    task.options.noLog === true
      ? hiddenLabel(module.name, task.where)
      : deferred
        ? `${module.name} (arguments decided at run time)`
        : module.label(args);
  const name = task.options.name ?? (role ? `${role}: ${label}` : label);
  return { module, args, name, ...(deferred ? { deferred } : {}) };
}

/** A noLog task's argument errors name the argument but never echo its value. */
function validateArgs(module: AnyModule, task: Task, where: Where): unknown {
  try {
    return module.validate({ ...task.args }, where);
  } catch (error) {
    throw task.options.noLog === true ? maskArgumentValues(error, task.args) : error;
  }
}

// Options of a loop that each item's task takes unless it sets them itself.
const INHERITED_BY_ITEMS = ["become", "noLog", "checkMode", "delegateTo"] as const;

function compileLoop(
  b: Builder,
  task: Task,
  spec: LoopSpec,
  common: Omit<CompiledTask, "module" | "args" | "name">,
  inherited: Inherited,
): CompiledTask {
  const compile = (item: unknown, index: number): CompiledItem => {
    const built = spec.build(item, index);
    if (built?.kind !== "task" || built.loop) throw notAStep(built, b.host);
    const itemTask = loopItemTask(task, built);
    const options = itemTask.options;
    const where = { ...built.where, host: b.host };
    const compiled: CompiledTask = {
      ...common,
      task: itemTask,
      notify: [],
      ...(options.become === undefined ? {} : { become: options.become }),
      ...moduleOf(itemTask, where, inherited.role, inherited.baseDir),
    };
    const refs = options.notify === undefined ? [] : [options.notify].flat();
    compiled.notify = refs.map((ref) => resolveHandler(ref, b.handlers, compiled, b.host));
    return { item, label: itemLabel(spec, item, index, compiled), task: compiled };
  };
  const where = { ...task.where, host: b.host };
  const fixed = Array.isArray(spec.items)
    ? guard(() => (spec.items as unknown[]).map(compile), where, b.host)
    : undefined;
  const first = fixed?.[0]?.task.module.name;
  const label = first ? `${first} loop` : "loop";
  const name = task.options.name ?? (inherited.role ? `${inherited.role}: ${label}` : label);
  return {
    ...common,
    module: loopModule,
    args: {},
    name,
    loop: { spec, ...(fixed ? { fixed } : {}), compile },
  };
}

/** An item's task as it runs: the loop's inheritable options fill the ones it leaves unset. */
export function loopItemTask(loop: Task, built: Task): Task {
  const options = { ...built.options };
  for (const key of INHERITED_BY_ITEMS)
    if (options[key] === undefined && loop.options[key] !== undefined)
      Object.assign(options, { [key]: loop.options[key] });
  return { ...built, options };
}

function itemLabel(spec: LoopSpec, item: unknown, index: number, task: CompiledTask): string {
  if (spec.label) return spec.label(item, index);
  if (typeof item === "string" || typeof item === "number" || typeof item === "boolean")
    return String(item);
  return task.module.label(task.args);
}

/** Stands in for a loop task's module: the runner expands the items, so it is never planned. */
const loopModule: AnyModule = {
  name: "loop",
  validate: (raw) => raw,
  label: () => "loop",
  facts: () => Promise.reject(bug("a loop task was planned as a module")),
  plan: () => {
    throw bug("a loop task was planned as a module");
  },
};

// Known limit: handlers are not filtered by tags; a notified handler runs whatever --tags says.
function buildHandlers(
  b: Builder,
  owner: string,
  defined: Record<string, Task>,
  vars: Record<string, unknown>,
  baseDir: string,
): Record<string, HandlerRef> {
  const refs: Record<string, HandlerRef> = {};
  for (const [key, task] of Object.entries(defined)) {
    const id = `${owner}:${key}`;
    refs[key] = { kind: "handler-ref", id };
    const role = owner === "play" ? undefined : owner;
    const quiet: Builder = { ...b, pendingNotify: [] };
    const base = compileTask(quiet, task, {
      vars,
      baseDir,
      tags: [],
      conditions: [],
      scope: [],
      ...(role ? { role } : {}),
    });
    const name = task.options.name ?? (role ? `${owner}: ${key}` : key);
    b.handlers.push({ ...base, id, name });
  }
  return refs;
}

function resolveHandler(
  ref: HandlerRef | string,
  handlers: CompiledHandler[],
  task: CompiledTask,
  host: string,
): string {
  if (typeof ref !== "string") return ref.id;
  const found = handlers.find((h) => h.name === ref || h.id === ref || h.id.endsWith(`:${ref}`));
  if (found) return found.id;
  throw inputError(
    "playbook",
    "HANDLER_UNKNOWN",
    `task "${task.name}" notifies "${ref}", but no handler has that name (defined: ${handlers.map((h) => h.name).join(", ") || "none"})`,
    { ...task.task.where, host },
  );
}

/** Merges schema defaults, role defaults, inventory values and play parameters, then checks them. */
function roleVars(
  use: RoleUse,
  host: InventoryHost,
  hostVars: Record<string, unknown>,
  play: Play,
): Record<string, unknown> {
  const vars = mergeRoleVars(use, hostVars);
  const validate = ajv.compile(use.role.schema);
  if (!validate(vars)) throw roleVarError(validate.errors ?? [], { use, host, vars, play });
  return vars;
}

/**
 * A role's variables for one host, unchecked: schema defaults, then role defaults, then the
 * host's values for the role's own variables, then the play's parameters. Lint reuses it.
 */
export function mergeRoleVars(
  use: RoleUse,
  hostVars: Record<string, unknown>,
): Record<string, unknown> {
  const properties = Object.keys(use.role.schema.properties ?? {});
  const fromSchema = Object.fromEntries(
    Object.entries(use.role.schema.properties ?? {})
      .filter(([, s]) => (s as { default?: unknown }).default !== undefined)
      .map(([k, s]) => [k, (s as { default?: unknown }).default]),
  );
  const fromHost = Object.fromEntries(
    Object.entries(hostVars).filter(([k]) => properties.includes(k)),
  );
  return { ...fromSchema, ...use.role.defaults, ...fromHost, ...use.params };
}

interface RoleVarContext {
  use: RoleUse;
  host: InventoryHost;
  vars: Record<string, unknown>;
  play: Play;
}

function roleVarError(errors: ErrorObject[], { use, host, vars, play }: RoleVarContext) {
  const problems = roleVarProblems(errors, vars);
  const subject = problems[0] as VarErrorSubject;
  const { name, dotted } = subject;
  const source =
    roleVarSource(name, { use, host, play }, subjectPath(subject))?.label ?? "role defaults";
  const role = `role ${use.role.name}`;
  const more =
    problems.length > 1
      ? `; ${problems.length - 1} more problem(s): omens-play lint lists them all`
      : "";
  const message =
    subject.kind === "missing"
      ? `${role}: variable "${dotted}" is missing for host ${host.name}${subject.key ? ` (in the value from ${source})` : misspelt(name, host)}${more}`
      : subject.kind === "unknown"
        ? `${role}: unknown ${subject.key ? "key" : "variable"} "${dotted}" for host ${host.name} (from ${source})${more}`
        : `${role}: variable "${dotted}" for host ${host.name} ${subject.message} (got ${JSON.stringify(valueAt(vars[name], subject.inside))}, from ${source})${more}`;
  return inputError(
    "playbook",
    "ROLE_VAR_INVALID",
    message,
    { ...use.where, host: host.name },
    `the role's variables are declared in ${use.role.dir}`,
  );
}

/** For a missing variable, the near names the host's inventory sets: `; ... "stepCaPrt" ...: misspelt?`. */
function misspelt(name: string, host: InventoryHost): string {
  const sets = nearNames(name, Object.keys(host.vars)).flatMap((near) => {
    const source = variableSource(host, near);
    return source ? [`"${near}" in ${source.label}`] : [];
  });
  return sets.length > 0 ? `; the inventory sets ${sets.join(" and ")}: misspelt?` : "";
}

/**
 * Where a role variable's value came from: the play's parameters, then its `vars`, then the
 * inventory (for a path inside the variable, that value's own line); undefined when only the
 * role's defaults give it.
 */
export function roleVarSource(
  name: string,
  { use, host, play }: { use: RoleUse; host: InventoryHost; play: Play },
  inside: string[] = [],
): { label: string; where: Where } | undefined {
  const place = (where: Where) => `${where.file ?? "?"}:${where.line}`;
  if (name in use.params) return { label: `the play (${place(use.where)})`, where: use.where };
  if (play.vars && name in play.vars)
    return { label: `the play's vars (${place(play.where)})`, where: play.where };
  return variableSource(host, name, inside);
}

/** Every task a compiled host holds: tasks, each fixed loop's item tasks, and handlers. */
export function compiledTasks(compiled: CompiledHost): CompiledTask[] {
  return [
    ...compiled.tasks.flatMap((c) => [c, ...(c.loop?.fixed ?? []).map((item) => item.task)]),
    ...compiled.handlers,
  ];
}

/**
 * The inventory variables a task's fixed `delegateTo` is read from: those holding that name
 * whose change moves the delegate when the play is built again for the host. None when the
 * playbook writes the name itself.
 */
export function delegateSources(
  play: Play,
  host: InventoryHost,
  playbookFile: string,
  task: Task,
  peers: ReadonlyMap<string, InventoryHost>,
): { name: string; label: string; where: Where }[] {
  const target = task.options.delegateTo;
  if (typeof target !== "string") return [];
  const moved = `${target}-moved`;
  const same = (where: Where) =>
    where.file === task.where.file &&
    where.line === task.where.line &&
    where.column === task.where.column;
  return Object.keys(host.vars)
    .filter((name) => host.vars[name] === target)
    .flatMap((name) => {
      let again: CompiledHost;
      try {
        const movedHost = { ...host, vars: { ...host.vars, [name]: moved } };
        again = compileHost(play, movedHost, playbookFile, undefined, peers);
      } catch {
        return [];
      }
      const follows = compiledTasks(again).some(
        (c) => same(c.task.where) && c.task.options.delegateTo === moved,
      );
      const source = follows ? variableSource(host, name) : undefined;
      return source ? [{ name, ...source }] : [];
    });
}

/** What a schema error of a role's variables is about. */
export interface VarErrorSubject {
  /** The role variable: `spireEntries`. */
  name: string;
  /** Keys inside it to the value at fault, or to the object that lacks or has too many keys. */
  inside: string[];
  kind: "missing" | "unknown" | "invalid";
  /** For a key missing from, or unknown in, a value inside the variable: that key. */
  key?: string;
  /** The whole path for messages: `spireEntries[1].selectors`. */
  dotted: string;
  message: string;
}

/** Reads a schema error's JSON pointer (`/spireEntries/1`) and its key, if any. */
/**
 * The distinct problems in a role schema's errors, as runs count them and lint lists them. A
 * value outside a union of literals is one problem that names the allowed values, not one
 * error per literal plus one for the union.
 */
export function roleVarProblems(
  errors: ErrorObject[],
  vars: Record<string, unknown>,
): VarErrorSubject[] {
  const inBranch = (e: ErrorObject, union: ErrorObject) =>
    e.schemaPath.startsWith(`${union.schemaPath}/`);
  const literalUnions = errors.filter((u) => {
    if (u.keyword !== "anyOf" && u.keyword !== "oneOf") return false;
    const branches = errors.filter((e) => inBranch(e, u));
    return branches.length > 0 && branches.every((e) => e.keyword === "const");
  });
  const seen = new Set<string>();
  return errors.flatMap((error) => {
    if (literalUnions.some((u) => inBranch(error, u))) return [];
    const union = literalUnions.includes(error)
      ? errors.filter((e) => inBranch(e, error))
      : undefined;
    const allowed = union?.map((e) =>
      JSON.stringify((e.params as { allowedValue: unknown }).allowedValue),
    );
    const subject = varErrorSubject(
      allowed ? { ...error, message: `must be one of ${allowed.join(", ")}` } : error,
      vars,
    );
    const key = `${subject.kind} ${subject.dotted} ${subject.message}`;
    if (seen.has(key)) return [];
    seen.add(key);
    return [subject];
  });
}

function varErrorSubject(error: ErrorObject, vars?: Record<string, unknown>): VarErrorSubject {
  const params = error.params as { missingProperty?: string; additionalProperty?: string };
  const path = pointerKeys(error.instancePath);
  const key = params.missingProperty ?? params.additionalProperty;
  const kind =
    params.missingProperty !== undefined
      ? "missing"
      : params.additionalProperty !== undefined
        ? "unknown"
        : "invalid";
  const message = error.message ?? "is invalid";
  const [name, ...inside] = path;
  if (name === undefined)
    return { name: key ?? "?", inside: [], kind, dotted: key ?? "?", message };
  const full = key === undefined ? path : [...path, key];
  return {
    name,
    inside,
    kind,
    ...(key === undefined ? {} : { key }),
    dotted: keyPath(full, vars),
    message,
  };
}

/** The path inside the variable to point at: an unknown key's own line, else the value's. */
export function subjectPath(subject: VarErrorSubject): string[] {
  return subject.kind === "unknown" && subject.key
    ? [...subject.inside, subject.key]
    : subject.inside;
}

/** The value at a path of keys inside a value; undefined where the path leads nowhere. */
export function valueAt(value: unknown, path: string[]): unknown {
  return path.reduce<unknown>(
    (at, key) => (at && typeof at === "object" ? (at as Record<string, unknown>)[key] : undefined),
    value,
  );
}
