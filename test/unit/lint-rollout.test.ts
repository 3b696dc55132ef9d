import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { lint } from "../../engine/lint/lint.js";
import { checkRollout } from "../../engine/runner/batches.js";

// A play's rollout settings: a run refuses the impossible ones before any host is contacted,
// and lint reports them once, as the engine words them; a migration whose failure budget can
// never be exceeded is a play-serial finding.

const fixtures = resolve(import.meta.dirname, "../fixtures/lint");
const inventory = join(fixtures, "inventory.yaml");
const where = { file: "site.ts", line: 3, column: 1 };

async function findings(playbook: string, inventories = [inventory]) {
  const report = await lint({ paths: [join(fixtures, playbook)], inventories, typecheck: false });
  return report.findings.map((f) => ({ rule: f.rule, line: f.where.line, message: f.message }));
}

describe("rollout settings", () => {
  it.each([
    [{ serial: "150%" as const }, 'serial: "150%" is not a percentage between 0% and 100%'],
    [{ serial: 0 }, "serial: 0 is not a positive whole number"],
    [{ serial: 1.5 }, "serial: 1.5 is not a positive whole number"],
    [{ serial: [] }, "serial: the list of steps is empty"],
    [{ maxFailPercentage: 150 }, "maxFailPercentage: 150 is not a number from 0 to 100"],
    [{ maxFailPercentage: -1 }, "maxFailPercentage: -1 is not a number from 0 to 100"],
  ])("%j is refused: %s", (settings, message) => {
    expect(() => checkRollout({ ...settings, where })).toThrow(message);
  });

  it("accepts steps, percentages and budgets a run can use", () => {
    for (const settings of [{}, { serial: [1, "50%" as const] }, { maxFailPercentage: 0 }])
      expect(() => checkRollout({ ...settings, where })).not.toThrow();
  });

  it("lint reports an impossible serial once, as task-invalid at the play, for two inventories", async () => {
    expect(await findings("rollout-invalid.ts", [inventory, inventory])).toEqual([
      {
        rule: "task-invalid",
        line: 5,
        message: 'serial: "150%" is not a percentage between 0% and 100%',
      },
    ]);
  });

  it("lint finds a migration whose maxFailPercentage of 100 never stops the rollout", async () => {
    expect(await findings("rollout-never-stops.ts")).toEqual([
      {
        rule: "play-serial",
        line: 5,
        message:
          'play "agents move to the new attestor": the play migrates hosts, but its maxFailPercentage 100 never stops the rollout: no batch can fail more than 100%',
      },
    ]);
  });
});
