import { describe, expect, it } from "vitest";
import { block, command, file, loop, stat, type TaskContext } from "../../engine/index.js";

// Type tests: `tsc --noEmit` checks them; each @ts-expect-error is a misuse that must not compile.
const probe = stat({ path: "/etc/motd" });
const dirs = loop([{ path: "/srv/a", mode: "0750" }] as const, (d) =>
  file({ path: d.path, state: "directory", mode: d.mode }),
);
const predicates = {
  exists: (ctx: TaskContext) => ctx.result(probe)?.stat.exists === true,
  itemMode: (ctx: TaskContext) => ctx.result(dirs)?.results[0]?.item.mode === "0750",
  osId: (ctx: TaskContext) => ctx.facts.os.id === "debian",
  tpm: (ctx: TaskContext) => ctx.facts.tpm.kind === "present" && ctx.facts.tpm.tcti !== "",
  failed: (ctx: TaskContext) => ctx.failure.kind === "failed" && ctx.failure.task !== "",
  // @ts-expect-error stat results have no `stdout2`
  wrongField: (ctx: TaskContext) => ctx.result(probe)?.stat.stdout2,
  // @ts-expect-error a TPM fact is a tagged union: tcti only exists once narrowed
  unnarrowed: (ctx: TaskContext) => ctx.facts.tpm.tcti,
  // @ts-expect-error the failure's task only exists once narrowed to "failed"
  failureTask: (ctx: TaskContext) => ctx.failure.task,
};
// @ts-expect-error an item's fields are typed: `owner` is not one
loop([{ path: "/srv/a" }], (d) => file({ path: d.path, owner: d.owner }));
// @ts-expect-error until receives the task's typed result
stat({ path: "/x", until: (r) => r.stat.nope === 1 });
// @ts-expect-error a block needs its tasks
block({ rescue: [] });

describe("the DSL's builders", () => {
  it("build a loop as one task carrying its items", () => {
    expect(dirs).toMatchObject({ kind: "task", module: "loop" });
    expect(dirs.loop?.items).toHaveLength(1);
    expect(Object.keys(predicates)).toHaveLength(8);
  });

  it("build a block whose sections default to empty", () => {
    const built = block({ name: "b", tasks: [command({ argv: ["true"] })] });
    expect(built).toMatchObject({ kind: "block", rescue: [], always: [], options: { name: "b" } });
    expect(built.where.file).toContain("dsl-types.test.ts");
  });
});
