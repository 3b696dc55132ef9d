import { dirname } from "node:path";
import type { Static, TObject } from "@sinclair/typebox";
import type { Step } from "./block.js";
import { callerLocation, type HandlerRef, type Task } from "./task.js";
import type { Where } from "../errors.js";

/** What a role's `tasks` function receives besides its variables. */
export interface RoleContext<H extends string> {
  /** References to the role's handlers, for `notify`. */
  handlers: Record<H, HandlerRef>;
  /** The inventory name of the host the tasks are built for. */
  host: string;
}

/** A role: typed variables with defaults, handlers and tasks. */
export interface RoleSpec<S extends TObject, H extends string> {
  /** The variables' schema (TypeBox): their TypeScript type and the run-time check of inventory values. */
  vars: S;
  /** Values used when neither the inventory nor the play gives one. */
  defaults?: Partial<Static<S>>;
  handlers?: (vars: Static<S>) => Record<H, Task>;
  tasks: (vars: Static<S>, ctx: RoleContext<H>) => Step[];
  /** Applying the role migrates hosts: lint requires `serial` on every play that uses it. */
  migrates?: boolean;
}

/** A role as registered by `defineRole`; the engine reads it, users call its factory. */
export interface RoleDefinition {
  readonly name: string;
  /** The role's folder: templates and files are looked up below it. */
  readonly dir: string;
  readonly schema: TObject;
  readonly defaults: Record<string, unknown>;
  readonly handlers?: (vars: Record<string, unknown>) => Record<string, Task>;
  readonly tasks: (vars: Record<string, unknown>, ctx: RoleContext<string>) => Step[];
  readonly migrates?: boolean;
}

/** A role applied in a play, with the parameters the play gives it. */
export interface RoleUse {
  readonly kind: "role";
  readonly role: RoleDefinition;
  readonly params: Record<string, unknown>;
  readonly where: Where;
}

/** Calling a role with (some of) its variables adds it to a play. */
export type RoleFactory<S extends TObject> = ((params?: Partial<Static<S>>) => RoleUse) & {
  readonly definition: RoleDefinition;
};

/**
 * Defines a role whose variables are a TypeScript type: the editor completes them, the compiler
 * rejects a misspelt one, and the engine checks inventory values against the same schema.
 *
 * @example
 * export const motd = defineRole("motd", {
 *   vars: Type.Object({ site: Type.String() }),
 *   defaults: { site: "lab" },
 *   tasks: (vars) => [copy({ dest: "/etc/motd", content: `site ${vars.site}\n` })],
 * });
 */
const definedRoles: RoleDefinition[] = [];

/** Every role defined so far in this process: those the loaded playbooks import, directly or not. */
export function allDefinedRoles(): readonly RoleDefinition[] {
  return definedRoles;
}

export function defineRole<S extends TObject, H extends string = never>(
  name: string,
  spec: RoleSpec<S, H>,
): RoleFactory<S> {
  const file = callerLocation().file;
  const definition: RoleDefinition = {
    name,
    dir: file ? dirname(file) : process.cwd(),
    schema: spec.vars,
    defaults: (spec.defaults ?? {}) as Record<string, unknown>,
    ...(spec.handlers ? { handlers: spec.handlers as RoleDefinition["handlers"] } : {}),
    tasks: spec.tasks as RoleDefinition["tasks"],
    ...(spec.migrates ? { migrates: true } : {}),
  };
  definedRoles.push(definition);
  const factory = (params: Partial<Static<S>> = {}) => ({
    kind: "role" as const,
    role: definition,
    params: params as Record<string, unknown>,
    where: callerLocation(),
  });
  return Object.assign(factory, { definition });
}
