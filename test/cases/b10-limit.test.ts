import { describe, expect, it } from "vitest";
import { inventoryFile, labConnectionLines } from "../helpers/conn.js";
import { lab, omensPlay, type PlayRun } from "../helpers/lab.js";

// B10: --limit narrows the play's own hosts; a limit naming only hosts outside the play's
// group runs nothing (and connects nowhere) rather than the whole group.
function inventory(): string {
  const info = lab();
  const at = (h: "auth" | "ca") => `{ address: ${info.hosts[h].address} }`;
  return inventoryFile([
    "all:",
    "  user: root",
    ...labConnectionLines(),
    "  children:",
    "    api:",
    `      hosts: { api1: ${at("auth")}, api2: ${at("ca")} }`,
    "    worker:",
    `      hosts: { wk1: ${at("auth")}, wk2: ${at("ca")} }`,
  ]);
}

const ran = (run: PlayRun) =>
  [...new Set(run.events.filter((e) => e.kind === "task-start").map((e) => String(e.host)))].sort();

describe("B10: --limit and the play's group", () => {
  const file = inventory();
  const limited = (pattern: string) =>
    omensPlay(["test/fixtures/cases/b10-worker.ts", "-i", file, "--json", "--limit", pattern]);

  it.each([
    ["wk1", ["wk1"]],
    ["worker:!wk2", ["wk1"]],
    ["all:&worker", ["wk1", "wk2"]],
  ])("--limit %s runs %j", async (pattern, hosts) => {
    const run = await limited(pattern);
    expect(run.code, run.stderr).toBe(0);
    expect(ran(run)).toEqual(hosts);
    expect(Object.keys(run.recap).sort()).toEqual(hosts);
  });

  it.each(["api1", "api*", "nosuch"])(
    "--limit %s runs nothing, opens no connection and exits 0 with a warning",
    async (pattern) => {
      const run = await limited(pattern);
      expect(run.code, run.stderr).toBe(0);
      expect(ran(run)).toEqual([]);
      expect(run.recap).toEqual({});
      const warnings = run.events.filter((e) => e.kind === "warning" || e.kind === "play-empty");
      expect(warnings.length).toBeGreaterThan(0);
      if (pattern === "nosuch")
        expect(JSON.stringify(warnings)).toContain("pattern 'nosuch' matched no hosts");
    },
  );
});
