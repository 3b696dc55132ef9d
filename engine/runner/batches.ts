import { inputError, type Where } from "../errors.js";
import type { Play, SerialStep } from "../dsl/playbook.js";

/** The error codes {@link checkRollout} refuses a play with. */
export const ROLLOUT_CODES = ["SERIAL_EMPTY", "SERIAL_INVALID", "MAX_FAIL_INVALID"] as const;

/**
 * Refuses a play whose rollout settings cannot work, when the playbook is prepared: a bad
 * `serial` found only when its play starts would stop a run after earlier plays changed hosts.
 */
export function checkRollout(play: Pick<Play, "serial" | "maxFailPercentage" | "where">): void {
  serialBatches(["a host"], play.serial, play.where);
  const max = play.maxFailPercentage;
  if (max !== undefined && !(typeof max === "number" && max >= 0 && max <= 100))
    throw inputError(
      "playbook",
      "MAX_FAIL_INVALID",
      `maxFailPercentage: ${JSON.stringify(max)} is not a number from 0 to 100`,
      play.where,
    );
}

/**
 * Splits hosts into rollout batches. A list of steps is used in order and its last step
 * repeats until every host is in a batch; percentages are of all the play's hosts, rounded
 * down but never below one host.
 */
export function serialBatches(
  hosts: string[],
  serial: SerialStep | SerialStep[] | undefined,
  where: Where,
): string[][] {
  if (serial === undefined) return [hosts];
  const steps = (Array.isArray(serial) ? serial : [serial]).map((s) =>
    stepSize(s, hosts.length, where),
  );
  if (steps.length === 0)
    throw inputError("playbook", "SERIAL_EMPTY", "serial: the list of steps is empty", where);
  const batches: string[][] = [];
  let offset = 0;
  for (let i = 0; offset < hosts.length; i += 1) {
    const size = steps[Math.min(i, steps.length - 1)] as number;
    batches.push(hosts.slice(offset, offset + size));
    offset += size;
  }
  return batches;
}

function stepSize(step: SerialStep, total: number, where: Where): number {
  if (typeof step === "number") {
    if (!Number.isInteger(step) || step < 1)
      throw inputError(
        "playbook",
        "SERIAL_INVALID",
        `serial: ${step} is not a positive whole number`,
        where,
      );
    return step;
  }
  const percent = Number(step.slice(0, -1));
  if (!/^\d+(\.\d+)?%$/.test(step) || percent <= 0 || percent > 100) {
    throw inputError(
      "playbook",
      "SERIAL_INVALID",
      `serial: "${step}" is not a percentage between 0% and 100%`,
      where,
    );
  }
  return Math.max(1, Math.floor((total * percent) / 100));
}
