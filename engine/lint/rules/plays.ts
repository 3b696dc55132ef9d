import { relative } from "node:path";
import { serialBatches } from "../../runner/batches.js";
import type { Finding, Rule } from "../finding.js";
import { allRuns, type PlayRun } from "../model.js";

export const playSerial: Rule = {
  id: "play-serial",
  rationale:
    "A play that migrates hosts (migrates: true on it or a role) must roll out in batches and stop on failure.",
  level: "error",
  check: (model) => [...allRuns(model)].flatMap((run) => serialProblem(run) ?? []),
};

function serialProblem(run: PlayRun): Finding | undefined {
  const { play } = run;
  const migrating = play.migrates ? "the play" : play.roles?.find((r) => r.role.migrates);
  if (!migrating || run.hosts.length < 2) return undefined;
  const why =
    migrating === "the play"
      ? "the play migrates hosts"
      : `role ${migrating.role.name} migrates hosts`;
  const finding = (message: string): Finding => ({
    rule: "play-serial",
    message: `play "${play.name ?? play.hosts}": ${why}, ${message}`,
    where: play.where,
    play,
  });
  const n = run.hosts.length;
  if (play.serial === undefined) return finding(`but has no serial: all ${n} hosts change at once`);
  let batches: string[][];
  try {
    batches = serialBatches(
      run.hosts.map((h) => h.host.name),
      play.serial,
      play.where,
    );
  } catch {
    return undefined; // reported as task-invalid: a run refuses the play
  }
  if (batches.length < 2)
    return finding(`but serial ${JSON.stringify(play.serial)} puts all ${n} hosts in one batch`);
  if (play.maxFailPercentage === undefined && !play.anyErrorsFatal)
    return finding(
      "but sets neither maxFailPercentage nor anyErrorsFatal: later batches still run after a batch fails",
    );
  if (!play.anyErrorsFatal && (play.maxFailPercentage ?? 0) >= 100)
    return finding(
      `but its maxFailPercentage ${play.maxFailPercentage} never stops the rollout: no batch can fail more than 100%`,
    );
  return undefined;
}

export const playNoHosts: Rule = {
  id: "play-no-hosts",
  rationale:
    "A play whose pattern, or a term of it, matches no host does nothing there, and lint cannot check its tasks.",
  level: "warning",
  check: (model) => [...allRuns(model)].flatMap(noHostProblems),
};

/** The whole pattern matching nothing, or else each of its terms that matches nothing. */
function noHostProblems(run: PlayRun): Finding[] {
  const { play } = run;
  const file = relative(process.cwd(), run.inventory.file);
  const finding = (message: string): Finding => ({
    rule: "play-no-hosts",
    message: `play "${play.name ?? play.hosts}": ${message}`,
    where: play.where,
    play,
  });
  if (run.hosts.length === 0)
    return [
      finding(`pattern '${play.hosts}' matches no host in ${file}; its tasks were not checked`),
    ];
  return run.unmatched.map((term) =>
    finding(`'${term}' in pattern '${play.hosts}' matches no host in ${file} (a misspelt group?)`),
  );
}
