import type { Where } from "../errors.js";
import type { LintSkip } from "../lint/rule-ids.js";
import type { RoleUse } from "./role.js";
import type { Step } from "./block.js";
import { callerLocation, type HandlerRef, type Task } from "./task.js";

/** One step of a rolling rollout: a host count or a percentage such as "50%". */
export type SerialStep = number | `${number}%`;

/** What a play's `tasks` function receives. */
export interface PlayContext<H extends string> {
  handlers: Record<H, HandlerRef>;
  host: string;
  /**
   * Another inventory host's variables as its own tasks in this play see them (inventory,
   * then play vars), like Ansible's `hostvars`. A name the inventory lacks fails the play's
   * build for this host.
   *
   * @example
   * tasks: (vars, { hostVars }) => {
   *   const server = hostVars(String(vars.spireServerHost));
   *   return [template({ src: "server.conf.hbs", dest: "/etc/spire/server/server.conf", vars: server, delegateTo: String(vars.spireServerHost) })];
   * }
   */
  hostVars(name: string): Record<string, unknown>;
}

/** A play: which hosts, which roles and tasks, and how to roll out across them. */
export interface PlaySpec<H extends string = string> {
  name?: string;
  /** Variables for every host of the play; they override inventory values. */
  vars?: Record<string, unknown>;
  roles?: RoleUse[];
  /** Tasks (and blocks) after the roles; a function receives the host's variables. */
  tasks?: Step[] | ((vars: Record<string, unknown>, ctx: PlayContext<H>) => Step[]);
  handlers?: Record<H, Task>;
  /** Hosts per batch: a number, a percentage, or a list of steps whose last one repeats. */
  serial?: SerialStep | SerialStep[];
  /** Stop the rollout when more than this percentage of a batch fails (unreachable counts). */
  maxFailPercentage?: number;
  /** Stop the rollout when any host fails. */
  anyErrorsFatal?: boolean;
  /** Run notified handlers even on hosts where a later task failed. */
  forceHandlers?: boolean;
  /**
   * The play changes how hosts work (a migration, an upgrade): lint then requires `serial`
   * and a failure budget, so a bad change stops after one batch. Roles may declare it too.
   */
  migrates?: boolean;
  /** Silences lint rules about the play itself (play-serial, play-no-hosts), with a reason. */
  lint?: LintSkip;
  /**
   * Gather every host's facts when the play starts (`{ packages: true }` adds the installed
   * packages). Without it, facts are gathered the first time a task or predicate reads them.
   */
  gatherFacts?: boolean | { packages?: boolean };
}

export interface Play extends PlaySpec {
  readonly kind: "play";
  /** Host pattern. */
  readonly hosts: string;
  readonly where: Where;
}

export interface Playbook {
  readonly kind: "playbook";
  readonly name: string;
  readonly plays: readonly Play[];
  readonly where: Where;
}

/**
 * A play over the hosts a pattern selects.
 *
 * @example
 * play("agents", { serial: 1, maxFailPercentage: 0, roles: [spireAgent({ attestor: "tpm_devid" })] })
 */
export function play<H extends string = never>(hosts: string, spec: PlaySpec<H>): Play {
  return { ...(spec as PlaySpec), kind: "play", hosts, where: callerLocation() };
}

/**
 * A playbook: plays run in order. Export it as the module's default.
 *
 * @example
 * export default definePlaybook("Sprint 1", [play("all", { roles: [tpmValidate()] })]);
 */
export function definePlaybook(name: string, plays: Play[]): Playbook {
  return { kind: "playbook", name, plays, where: callerLocation() };
}
