import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { command, copy, definePlaybook, play } from "../../engine/index.js";
import { main } from "../../engine/cli.js";
import { owedDir } from "../../engine/runner/owed.js";

// Two inventory hosts on this one machine share its state folder: each record names its host,
// so a handler box1 is owed is not run on box2.
function site() {
  const dir = mkdtempSync(join(tmpdir(), "omens-owed-"));
  const inventory = join(dir, "inventory.yaml");
  writeFileSync(
    inventory,
    "all:\n  hosts:\n    box1: { connection: local }\n    box2: { connection: local }\n",
  );
  const book = definePlaybook("site", [
    play("all", {
      handlers: {
        mark: command({ argv: ["true"] }),
      },
      tasks: (vars) => [
        ...(vars.inventoryHostname === "box1"
          ? [copy({ dest: join(dir, "box1.conf"), content: "v=2\n", notify: "mark" })]
          : []),
        command({ name: "gate", shell: `test -e ${join(dir, "pass")}`, changedWhen: () => false }),
      ],
    }),
  ]);
  const run = async () => {
    const out: string[] = [];
    const terminal = { out: (l: string) => void out.push(l), err: () => undefined, color: false };
    const file = join(dir, "site.ts");
    writeFileSync(file, "// imported by the test's own importer\n");
    const code = await main([file, "-i", inventory, "--json"], terminal, () =>
      Promise.resolve({ default: book }),
    );
    const events = out.map((l) => JSON.parse(l) as Record<string, unknown>);
    const ran = (task: string) =>
      events
        .filter((e) => e.kind === "task-result" && e.task === task)
        .map((e) => `${String(e.host)}:${String(e.status)}`);
    return { code, events, ran };
  };
  return { dir, run };
}

describe("owed handlers on hosts that share a machine", () => {
  it("a handler box1 was owed runs on box1 only, and its record goes once it has run", async () => {
    const { dir, run } = site();
    const first = await run();
    expect(first.code).toBe(2);
    expect(first.ran("mark")).toEqual([]);
    expect(readdirSync(owedDir()).map((f) => readFileSync(join(owedDir(), f), "utf8"))).toEqual([
      "box1\tmark\n",
    ]);

    writeFileSync(join(dir, "pass"), "");
    const second = await run();
    expect(second.code).toBe(0);
    expect(second.ran("mark")).toEqual(["box1:changed"]);
    const warnings = second.events.filter((e) => e.kind === "warning").map((e) => e.message);
    expect(warnings).toEqual([
      "box1: an earlier run notified mark and stopped before running it; it runs now",
    ]);
    expect(existsSync(owedDir())).toBe(false);

    const third = await run();
    expect([third.code, third.ran("mark")]).toEqual([0, []]);
  });

  it("a handler notified and run in the same run is not reported as an earlier run's", async () => {
    const { dir, run } = site();
    writeFileSync(join(dir, "pass"), "");
    const only = await run();
    expect(only.code).toBe(0);
    expect(only.ran("mark")).toEqual(["box1:changed"]);
    expect(only.events.filter((e) => e.kind === "warning")).toEqual([]);
    expect(existsSync(owedDir())).toBe(false);
  });
});
