import type { TaskContext } from "./task.js";

/** An argument value decided on each host just before its task runs. */
export interface Deferred<T> {
  readonly kind: "deferred";
  readonly resolve: (ctx: TaskContext) => T;
}

/** A module's arguments where each one may also be deferred. */
export type Deferrable<A> = { [K in keyof A]: A[K] | Deferred<A[K]> };

/**
 * An argument computed per host at run time, from the results earlier tasks registered on
 * that host and from its variables. Plans that depend on it are made only when the task runs,
 * so `omens-play lint` and load-time checks see the argument as unknown.
 *
 * @example
 * copy({
 *   dest: "/etc/spire/agent/join_token",
 *   mode: "0600",
 *   content: deferred((ctx) => new Secret(String(ctx.registered.token?.stdout).trim())),
 *   noLog: true,
 * })
 */
export function deferred<T>(resolve: (ctx: TaskContext) => T): Deferred<T> {
  return { kind: "deferred", resolve };
}

/** True for a value made by `deferred`. */
export function isDeferred(value: unknown): value is Deferred<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { kind?: unknown }).kind === "deferred" &&
    typeof (value as { resolve?: unknown }).resolve === "function"
  );
}

/** True when any top-level argument is deferred. */
export function hasDeferred(args: Readonly<Record<string, unknown>>): boolean {
  return Object.values(args).some(isDeferred);
}

/** The arguments with every deferred value computed for one host. */
export function resolveDeferred(
  args: Readonly<Record<string, unknown>>,
  ctx: TaskContext,
): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(args).map(([key, value]) => [
      key,
      isDeferred(value) ? value.resolve(ctx) : value,
    ]),
  );
}
