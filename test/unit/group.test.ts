import { describe, expect, it } from "vitest";
import { groupModule, parseGroupLine } from "../../engine/modules/group.js";
import type { PlanContext } from "../../engine/modules/types.js";

const ctx = {} as PlanContext;
const args = (extra: Record<string, unknown> = {}) =>
  groupModule.validate({ name: "spire", ...extra }, {});

describe("group planning", () => {
  it("creates an absent group, as a system group with a fixed gid when asked", () => {
    const plan = groupModule.plan(args({ system: true, gid: 990 }), { kind: "absent" }, ctx);
    expect(plan.ops).toEqual([{ kind: "exec", command: "groupadd --system --gid 990 spire" }]);
    expect(plan.diff?.[0]?.attributes).toEqual(["absent -> present", "gid 990"]);
  });

  it("changes the gid of an existing group", () => {
    const plan = groupModule.plan(args({ gid: 990 }), parseGroupLine("spire:x:997:a,b\n"), ctx);
    expect(plan).toMatchObject({ status: "changed", reason: "gid is 997" });
    expect(plan.ops).toEqual([{ kind: "exec", command: "groupmod --gid 990 spire" }]);
  });

  it("is ok when the group exists (with the wanted gid), and when absent is wanted and it is gone", () => {
    expect(groupModule.plan(args({ gid: 997 }), parseGroupLine("spire:x:997:\n"), ctx).status).toBe(
      "ok",
    );
    expect(groupModule.plan(args(), parseGroupLine("spire:x:997:\n"), ctx).status).toBe("ok");
    expect(groupModule.plan(args({ state: "absent" }), parseGroupLine(""), ctx).status).toBe("ok");
    expect(
      groupModule.plan(args({ state: "absent" }), parseGroupLine("spire:x:997:\n"), ctx).ops,
    ).toEqual([{ kind: "exec", command: "groupdel spire" }]);
  });

  it("refuses a bad name, a fractional gid and a numeric state", () => {
    expect(() => args({ name: "1abc" })).toThrow(/"name" must be a lower-case account name/);
    expect(() => args({ gid: 1.5 })).toThrow(/"gid" must be a whole number/);
    expect(() => args({ state: 1 })).toThrow(/"state" must be one of "present", "absent", got 1/);
  });
});
