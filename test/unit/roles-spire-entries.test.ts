import { describe, expect, it } from "vitest";
import type { PlanContext } from "../../engine/modules/types.js";
import { parseEntries, spireEntriesModule } from "../../roles/spire-server/entries.js";
import { sameValue } from "../../roles/openbao/state.js";

const SOCKET = "/run/spire/server/api.sock";
const ctx = (check: boolean): PlanContext => ({
  host: "spire",
  vars: {},
  registered: {},
  check,
  diff: false,
  where: {},
  task: "entries",
  baseDir: "/",
});

/** `entry show -output json` as SPIRE 1.14 prints it (IDs and selectors as objects). */
const shown = JSON.stringify({
  entries: [
    {
      id: "e-1",
      spiffe_id: { trust_domain: "funlab.casa", path: "/workload/openbao" },
      parent_id: { trust_domain: "funlab.casa", path: "/host/spire" },
      selectors: [{ type: "unix", value: "user:openbao" }],
      x509_svid_ttl: 3600,
      jwt_svid_ttl: 300,
      dns_names: [],
    },
  ],
  next_page_token: "",
});

function plan(entries: object[], check = false) {
  const args = spireEntriesModule.validate(
    { socketPath: SOCKET, trustDomain: "funlab.casa", entries },
    {},
  );
  return spireEntriesModule.plan(
    args,
    { kind: "listed", entries: parseEntries(shown) },
    ctx(check),
  );
}

const openbao = {
  spiffeId: "spiffe://funlab.casa/workload/openbao",
  parentId: "spiffe://funlab.casa/host/spire",
  selectors: ["unix:user:openbao"],
};

describe("spireEntries", () => {
  it("leaves an equal entry alone and says so", () => {
    expect(plan([openbao])).toEqual({ status: "ok", reason: "1 entries match", ops: [] });
    expect(plan([{ ...openbao, x509SvidTtl: 3600 }]).status).toBe("ok");
  });

  it("creates a missing entry, and a node alias with -node", () => {
    const result = plan([
      {
        spiffeId: "spiffe://funlab.casa/workload/step-ca",
        parentId: "spiffe://funlab.casa/host/ca",
        selectors: ["unix:user:step"],
      },
      {
        spiffeId: "spiffe://funlab.casa/host/auth",
        node: true,
        selectors: ["tpm_devid:subject:cn:auth.funlab.casa"],
      },
    ]);
    expect(result.status).toBe("changed");
    expect(result.ops.map((op) => (op.kind === "exec" ? op.command : op.kind))).toEqual([
      `spire-server entry create -socketPath ${SOCKET} -parentID spiffe://funlab.casa/host/ca -spiffeID spiffe://funlab.casa/workload/step-ca -selector unix:user:step`,
      `spire-server entry create -socketPath ${SOCKET} -node -spiffeID spiffe://funlab.casa/host/auth -selector tpm_devid:subject:cn:auth.funlab.casa`,
    ]);
  });

  it("updates an entry whose selectors or TTL differ, by its entry ID, and says what differs", () => {
    const result = plan([{ ...openbao, selectors: ["unix:uid:999"], x509SvidTtl: 600 }]);
    expect(result.reason).toBe(
      "update spiffe://funlab.casa/workload/openbao (selectors unix:user:openbao -> unix:uid:999, x509SVIDTTL 3600 -> 600)",
    );
    expect(result.ops).toEqual([
      {
        kind: "exec",
        command: `spire-server entry update -socketPath ${SOCKET} -entryID e-1 -parentID spiffe://funlab.casa/host/spire -spiffeID spiffe://funlab.casa/workload/openbao -selector unix:uid:999 -x509SVIDTTL 600`,
      },
    ]);
  });

  it("in check mode, before the server exists, reports what it would converge without failing", () => {
    const args = spireEntriesModule.validate(
      { socketPath: SOCKET, trustDomain: "funlab.casa", entries: [openbao] },
      {},
    );
    const result = spireEntriesModule.plan(
      args,
      { kind: "unreachable", why: "exit 127" },
      ctx(true),
    );
    expect(result).toMatchObject({ status: "changed", ops: [] });
    expect(() =>
      spireEntriesModule.plan(args, { kind: "unreachable", why: "exit 127" }, ctx(false)),
    ).toThrow(/cannot list registration entries: exit 127/);
  });

  it("refuses an entry that is neither a node alias nor has a parent", () => {
    expect(() => plan([{ spiffeId: "spiffe://funlab.casa/x", selectors: ["unix:uid:0"] }])).toThrow(
      /needs "parentId"/,
    );
  });
});

describe("OpenBao read-back comparison", () => {
  it("compares lists as sets, durations as seconds and single values as strings", () => {
    expect(sameValue(["openbao"], ["openbao"])).toBe(true);
    expect(sameValue(["a", "b"], "b,a")).toBe(true);
    expect(sameValue(["a"], ["a", "b"])).toBe(false);
    expect(sameValue("1h", 3600)).toBe(true);
    expect(sameValue("1h", 60)).toBe(false);
    expect(sameValue("jwt", "jwt")).toBe(true);
    expect(sameValue("https://x/keys", ["https://x/keys"])).toBe(true);
  });
});
