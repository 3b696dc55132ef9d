import { formatLocation } from "../errors.js";
import type { Plan, PlanContext } from "./types.js";

/**
 * A failed plan whose reason ends, like a thrown task error, with the host, the task and the
 * playbook file:line that wrote it, so a failure found while planning is as easy to trace.
 */
export function failedPlan(
  reason: string,
  ctx: Partial<Pick<PlanContext, "host" | "task" | "where">>,
  result?: Record<string, unknown>,
): Plan {
  const location = formatLocation(ctx.where ?? {});
  const context = [
    ctx.host && `host ${ctx.host}`,
    ctx.task && `task "${ctx.task}"`,
    location && `at ${location}`,
  ].filter(Boolean);
  const where = context.length > 0 ? `\n  (${context.join(", ")})` : "";
  return { status: "failed", reason: reason + where, ops: [], ...(result ? { result } : {}) };
}
