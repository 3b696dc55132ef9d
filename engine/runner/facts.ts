import type { Where } from "../errors.js";
import {
  FactsNeeded,
  gatherFacts,
  hostFacts,
  type FactParts,
  type HostFacts,
} from "../facts/gathered.js";
import type { HostState } from "./run.js";

/**
 * `ctx.facts` for a host: the gathered facts, or a {@link FactsNeeded} signal that makes the
 * runner gather them and evaluate the predicate again.
 */
export function factsView(state: HostState): HostFacts {
  if (!state.facts) throw new FactsNeeded({ packages: false });
  return state.facts;
}

/**
 * Runs `evaluate`; when it reads facts not gathered yet, gathers them (one remote command) and
 * runs it again. Predicates, item lists and plans are pure, so a second evaluation is safe.
 */
export async function withFacts<T>(
  state: HostState,
  where: Where,
  evaluate: () => T | Promise<T>,
): Promise<T> {
  for (;;) {
    try {
      return await evaluate();
    } catch (error) {
      if (!(error instanceof FactsNeeded)) throw error;
      if (state.facts && !error.parts.packages) throw error;
      await ensureFacts(state, error.parts, where);
    }
  }
}

/** Gathers a host's facts once per run (again only to add the package list). */
export async function ensureFacts(state: HostState, parts: FactParts, where: Where) {
  const has = state.gathered && (!parts.packages || state.gathered.packages);
  if (has) return;
  const connection = state.connection;
  if (!connection) throw new FactsNeeded(parts);
  const wanted = { packages: parts.packages || state.gathered?.packages !== undefined };
  state.onGather?.(wanted);
  state.gathered = await gatherFacts(connection, wanted, where);
  state.facts = hostFacts(state.gathered);
}
