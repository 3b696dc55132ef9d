import { dirname } from "node:path";
import { Ajv, type ErrorObject } from "ajv";
import { inputError, OmensError, toOmensError, type Where } from "../errors.js";
import type { InventoryHost } from "../inventory/load.js";
import { getModule } from "../modules/index.js";
import type { AnyModule } from "../modules/types.js";
import type { Play } from "../dsl/playbook.js";
import type { RoleUse } from "../dsl/role.js";
import type { HandlerRef, Task } from "../dsl/task.js";

/** A task ready to run on one host: module found, arguments validated, handlers resolved. */
export interface CompiledTask {
  task: Task;
  module: AnyModule;
  args: unknown;
  name: string;
  /** Variables for templates and predicates: host vars, play vars, then role vars. */
  vars: Record<string, unknown>;
  /** Folder that relative `src` paths are resolved against. */
  baseDir: string;
  role?: string;
  notify: string[];
}

/** A handler: a task run once at the end of a play on the hosts that notified it. */
export interface CompiledHandler extends CompiledTask {
  id: string;
}

export interface CompiledHost {
  tasks: CompiledTask[];
  /** In definition order: the order they run in. */
  handlers: CompiledHandler[];
}

// Role schemas come from TypeBox, which only builds valid ones; checking each against the
// meta-schema means compiling that first, about 200 ms of every run.
const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: false, validateSchema: false });

/**
 * Builds every task of a play for one host, validating role variables and module arguments.
 * Runs before any host is contacted, so input mistakes cost nothing.
 */
export function compileHost(play: Play, host: InventoryHost, playbookFile: string): CompiledHost {
  const hostVars = {
    ...host.vars,
    ...play.vars,
    inventoryHostname: host.name,
    groupNames: host.groups,
  };
  const handlers: CompiledHandler[] = [];
  const tasks: CompiledTask[] = [];
  const pendingNotify: { task: CompiledTask; refs: (HandlerRef | string)[] }[] = [];
  for (const use of play.roles ?? []) {
    const vars = roleVars(use, host, hostVars);
    const own = buildHandlers(
      use.role.name,
      use.role.handlers?.(vars) ?? {},
      { ...hostVars, ...vars },
      use.role.dir,
      host.name,
    );
    handlers.push(...own.compiled);
    const built = guard(
      () => use.role.tasks(vars, { handlers: own.refs, host: host.name }),
      use.where,
      host.name,
    );
    built.forEach((task) =>
      tasks.push(
        compileTask(
          task,
          { ...hostVars, ...vars },
          use.role.dir,
          host.name,
          pendingNotify,
          use.role.name,
        ),
      ),
    );
  }
  const playHandlers = buildHandlers(
    "play",
    play.handlers ?? {},
    hostVars,
    dirname(playbookFile),
    host.name,
  );
  handlers.push(...playHandlers.compiled);
  const playTasks =
    typeof play.tasks === "function"
      ? guard(
          () =>
            (play.tasks as Exclude<Play["tasks"], Task[] | undefined>)(hostVars, {
              handlers: playHandlers.refs,
              host: host.name,
            }),
          play.where,
          host.name,
        )
      : (play.tasks ?? []);
  playTasks.forEach((task) =>
    tasks.push(compileTask(task, hostVars, dirname(playbookFile), host.name, pendingNotify)),
  );
  for (const { task, refs } of pendingNotify)
    task.notify = refs.map((ref) => resolveHandler(ref, handlers, task, host.name));
  return { tasks, handlers };
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

function compileTask(
  task: Task,
  vars: Record<string, unknown>,
  baseDir: string,
  host: string,
  pendingNotify: { task: CompiledTask; refs: (HandlerRef | string)[] }[],
  role?: string,
): CompiledTask {
  if (task?.kind !== "task") {
    throw inputError(
      "playbook",
      "TASK_INVALID",
      `expected a task built by a module function (file, copy, ...), got ${JSON.stringify(task)?.slice(0, 80)}`,
      { host },
    );
  }
  const where = { ...task.where, host };
  const module = getModule(task.module, where);
  const args = module.validate({ ...task.args }, where);
  const label = module.label(args);
  const name = task.options.name ?? (role ? `${role}: ${label}` : label);
  const compiled: CompiledTask = {
    task,
    module,
    args,
    name,
    vars,
    baseDir,
    notify: [],
    ...(role ? { role } : {}),
  };
  const notify = task.options.notify;
  if (notify !== undefined)
    pendingNotify.push({ task: compiled, refs: Array.isArray(notify) ? notify : [notify] });
  return compiled;
}

function buildHandlers(
  owner: string,
  defined: Record<string, Task>,
  vars: Record<string, unknown>,
  baseDir: string,
  host: string,
) {
  const refs: Record<string, HandlerRef> = {};
  const compiled: CompiledHandler[] = [];
  for (const [key, task] of Object.entries(defined)) {
    const id = `${owner}:${key}`;
    refs[key] = { kind: "handler-ref", id };
    const base = compileTask(task, vars, baseDir, host, [], owner === "play" ? undefined : owner);
    const name = task.options.name ?? (owner === "play" ? key : `${owner}: ${key}`);
    compiled.push({ ...base, id, name });
  }
  return { refs, compiled };
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
): Record<string, unknown> {
  const vars = mergeRoleVars(use, hostVars);
  const validate = ajv.compile(use.role.schema);
  if (!validate(vars)) throw roleVarError(validate.errors ?? [], use, host, vars);
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

function roleVarError(
  errors: ErrorObject[],
  use: RoleUse,
  host: InventoryHost,
  vars: Record<string, unknown>,
) {
  const error = errors[0] as ErrorObject;
  const params = error.params as { missingProperty?: string; additionalProperty?: string };
  const name =
    params.missingProperty ?? params.additionalProperty ?? error.instancePath.split("/")[1] ?? "?";
  const source =
    host.varSources[name] ??
    (name in use.params ? `the play (${use.where.file}:${use.where.line})` : "role defaults");
  const message =
    error.keyword === "required"
      ? `role ${use.role.name}: variable "${name}" is missing for host ${host.name}`
      : error.keyword === "additionalProperties"
        ? `role ${use.role.name}: unknown variable "${name}" for host ${host.name} (from ${source})`
        : `role ${use.role.name}: variable "${name}" for host ${host.name} ${error.message} (got ${JSON.stringify(vars[name])}, from ${source})`;
  return inputError(
    "playbook",
    "ROLE_VAR_INVALID",
    message,
    { ...use.where, host: host.name },
    `the role's variables are declared in ${use.role.dir}`,
  );
}
