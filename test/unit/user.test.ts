import { describe, expect, it } from "vitest";
import { parseUserFacts, userModule, type UserFact } from "../../engine/modules/user.js";
import type { PlanContext } from "../../engine/modules/types.js";

const ctx = {} as PlanContext;
const args = (extra: Record<string, unknown> = {}) =>
  userModule.validate({ name: "spire", ...extra }, {});
const existing = parseUserFacts("spire:x:998:997::/var/lib/spire:/usr/sbin/nologin\nspire\ntss \n");
const command = (fact: UserFact, extra: Record<string, unknown>) => {
  const op = userModule.plan(args(extra), fact, ctx).ops[0];
  return op?.kind === "exec" ? op.command : undefined;
};

describe("user planning", () => {
  it("creates an absent user with every attribute asked for", () => {
    const plan = userModule.plan(
      args({
        system: true,
        uid: 998,
        groups: ["tss"],
        home: "/var/lib/spire",
        shell: "/usr/sbin/nologin",
      }),
      { kind: "absent" },
      ctx,
    );
    expect(plan.status).toBe("changed");
    expect(plan.ops).toEqual([
      {
        kind: "exec",
        command:
          "useradd --system --uid 998 --groups tss --home-dir /var/lib/spire --shell /usr/sbin/nologin --create-home spire",
      },
    ]);
    expect(plan.diff?.[0]?.attributes?.[0]).toBe("absent -> present");
  });

  it("changes only the attributes that differ, and shows each in the diff", () => {
    const plan = userModule.plan(
      args({ shell: "/bin/bash", uid: 998, groups: ["tss", "ssl-cert"] }),
      existing,
      ctx,
    );
    expect(plan.ops).toEqual([
      { kind: "exec", command: "usermod --groups ssl-cert,tss --shell /bin/bash spire" },
    ]);
    expect(plan.diff?.[0]?.attributes).toEqual([
      "groups tss -> ssl-cert,tss",
      "shell /usr/sbin/nologin -> /bin/bash",
    ]);
  });

  it("with append, only adds groups and keeps the others", () => {
    expect(command(existing, { groups: ["ssl-cert"], append: true })).toBe(
      "usermod --groups ssl-cert,tss spire",
    );
    expect(userModule.plan(args({ groups: ["tss"], append: true }), existing, ctx).status).toBe(
      "ok",
    );
  });

  it("is ok when the account already matches, with the primary group by name or gid", () => {
    const same = {
      uid: 998,
      group: "spire",
      home: "/var/lib/spire",
      shell: "/usr/sbin/nologin",
      groups: ["tss"],
    };
    expect(userModule.plan(args(same), existing, ctx)).toMatchObject({ status: "ok", ops: [] });
    expect(userModule.plan(args({ group: "997" }), existing, ctx).status).toBe("ok");
  });

  it("removes a present user with state absent, and is ok when it is already gone", () => {
    expect(command(existing, { state: "absent", removeHome: true })).toBe("userdel --remove spire");
    expect(userModule.plan(args({ state: "absent" }), { kind: "absent" }, ctx).status).toBe("ok");
  });

  it("refuses a bad name, a relative home, a negative uid and an unknown argument", () => {
    expect(() => args({ name: "Spire Server" })).toThrow(
      /"name" must be a lower-case account name/,
    );
    expect(() => args({ home: "var/lib/spire" })).toThrow(/"home" must be an absolute path/);
    expect(() => args({ uid: -1 })).toThrow(/"uid" must be a whole number from 0, got -1/);
    expect(() => args({ password: "x" })).toThrow(/unknown argument "password"/);
  });
});
