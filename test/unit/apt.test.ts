import { describe, expect, it } from "vitest";
import { aptModule } from "../../engine/modules/apt.js";
import type { PlanContext } from "../../engine/modules/types.js";

const ctx = {} as PlanContext;
const args = (extra: Record<string, unknown>) => aptModule.validate(extra, {});
const packages = (...list: { name: string; installed?: string; candidate?: string }[]) => ({
  kind: "packages" as const,
  packages: list,
});
const command = (plan: ReturnType<typeof aptModule.plan>) =>
  plan.ops[0]?.kind === "exec" ? plan.ops[0].command : undefined;
const APT =
  "env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";

describe("apt planning", () => {
  it("installs only the packages that are missing", () => {
    const plan = aptModule.plan(
      args({ name: ["jq", "curl"] }),
      packages({ name: "jq" }, { name: "curl", installed: "7.88" }),
      ctx,
    );
    expect(plan.reason).toBe("jq: absent -> installed");
    expect(command(plan)).toBe(`${APT} install jq`);
  });

  it("with state latest, upgrades an installed package whose candidate is newer", () => {
    const plan = aptModule.plan(
      args({ name: "curl", state: "latest" }),
      packages({ name: "curl", installed: "7.88", candidate: "7.89" }),
      ctx,
    );
    expect(plan.diff).toEqual([{ path: "packages", attributes: ["curl: 7.88 -> 7.89"] }]);
    expect(command(plan)).toBe(`${APT} install curl`);
  });

  it("is ok when every package is installed (and at its candidate for latest)", () => {
    expect(
      aptModule.plan(args({ name: "curl" }), packages({ name: "curl", installed: "7.88" }), ctx),
    ).toMatchObject({ status: "ok", reason: "installed: curl 7.88" });
    expect(
      aptModule.plan(
        args({ name: "curl", state: "latest" }),
        packages({ name: "curl", installed: "7.88", candidate: "7.88" }),
        ctx,
      ).status,
    ).toBe("ok");
  });

  it("installs a .deb whose version is not the installed one, and is ok when it is", () => {
    const valid = args({ deb: "/var/cache/x_2_all.deb" });
    const plan = aptModule.plan(
      valid,
      { kind: "deb", file: { name: "x", version: "2" }, installed: "1" },
      ctx,
    );
    expect(command(plan)).toBe(`${APT} install /var/cache/x_2_all.deb`);
    expect(
      aptModule.plan(valid, { kind: "deb", file: { name: "x", version: "2" }, installed: "2" }, ctx)
        .status,
    ).toBe("ok");
  });

  it("removes or purges installed packages with state absent", () => {
    const plan = aptModule.plan(
      args({ name: ["aa", "bb"], state: "absent", purge: true }),
      packages({ name: "aa", installed: "1" }, { name: "bb" }),
      ctx,
    );
    expect(command(plan)).toBe(`${APT} purge aa`);
    expect(
      aptModule.plan(args({ name: "bb", state: "absent" }), packages({ name: "bb" }), ctx).status,
    ).toBe("ok");
  });

  it("refuses bad names, a deb with another state, purge without absent, and nothing to install", () => {
    expect(() => args({ name: "Bad Name" })).toThrow(/"Bad Name" is not a Debian package name/);
    expect(() => args({ deb: "/x.deb", state: "absent" })).toThrow(
      /"deb" only works with state "present"/,
    );
    expect(() => args({ name: "aa", purge: true })).toThrow(
      /"purge" only works with state "absent"/,
    );
    expect(() => args({})).toThrow(/give "name" or "deb"/);
  });
});
