import { describe, expect, it } from "vitest";
import { migrationState } from "../../roles/spire-server/migration.js";

// The join_token decision of sprint 3, from the JSON `agent list` and `entry show` print.

const td = "funlab.casa";
const id = (path: string) => ({ trust_domain: td, path });
const joinAgent = (token: string) => ({
  id: id(`/spire/agent/join_token/${token}`),
  attestation_type: "join_token",
  selectors: [],
});
const devidAgent = (fp: string, cn: string) => ({
  id: id(`/spire/agent/tpm_devid/${fp}`),
  attestation_type: "tpm_devid",
  selectors: [{ type: "tpm_devid", value: `subject:cn:${cn}` }],
});
/** The entry `token generate -spiffeID` makes: parented on the join_token agent. */
const joinAlias = (host: string, token: string) => ({
  spiffe_id: id(`/host/${host}`),
  parent_id: id(`/spire/agent/join_token/${token}`),
  selectors: [{ type: "spiffe_id", value: `spiffe://${td}/spire/agent/join_token/${token}` }],
});
const devidAlias = (host: string, cn: string) => ({
  spiffe_id: id(`/host/${host}`),
  parent_id: id("/spire/server"),
  selectors: [{ type: "tpm_devid", value: `subject:cn:${cn}` }],
});
const state = (agents: object[], entries: object[]) =>
  migrationState(JSON.stringify({ agents }), JSON.stringify({ entries }));

describe("migrationState", () => {
  const aliases = [
    joinAlias("auth", "t-auth"),
    joinAlias("ca", "t-ca"),
    devidAlias("auth", "auth.funlab.casa"),
    devidAlias("ca", "ca.funlab.casa"),
  ];

  it("keeps join_token while one host has only its join_token agent", () => {
    const s = state(
      [joinAgent("t-auth"), joinAgent("t-ca"), devidAgent("aa", "auth.funlab.casa")],
      aliases,
    );
    expect(s.allMigrated).toBe(false);
    expect(s.devidHosts).toEqual([`spiffe://${td}/host/auth`]);
    expect(s.staleJoinTokenAgents).toEqual([`spiffe://${td}/spire/agent/join_token/t-auth`]);
    expect(s.unmigratedJoinTokenAgents).toEqual([`spiffe://${td}/spire/agent/join_token/t-ca`]);
  });

  it("retires join_token once every host has a tpm_devid agent", () => {
    const s = state(
      [
        joinAgent("t-auth"),
        joinAgent("t-ca"),
        devidAgent("aa", "auth.funlab.casa"),
        devidAgent("cc", "ca.funlab.casa"),
      ],
      aliases,
    );
    expect(s.allMigrated).toBe(true);
    expect(s.staleJoinTokenAgents).toHaveLength(2);
  });

  it("counts a join_token agent without an alias entry as not moved", () => {
    const s = state([joinAgent("t-other"), devidAgent("aa", "auth.funlab.casa")], aliases);
    expect(s.allMigrated).toBe(false);
    expect(s.unmigratedJoinTokenAgents).toEqual([`spiffe://${td}/spire/agent/join_token/t-other`]);
  });

  it("never retires join_token on a server that lists no tpm_devid agent", () => {
    expect(state([], []).allMigrated).toBe(false);
    expect(state([joinAgent("t-auth")], aliases).allMigrated).toBe(false);
  });

  it("a DevID agent whose CN no alias names does not stand in for a host", () => {
    const s = state([joinAgent("t-auth"), devidAgent("zz", "other.funlab.casa")], aliases);
    expect(s.allMigrated).toBe(false);
    expect(s.staleJoinTokenAgents).toEqual([]);
  });
});
