import { describe, expect, it } from "vitest";
import { agentPhaseConflict } from "../../roles/spire-agent/index.js";
import { serverPhaseConflict } from "../../roles/spire-server/index.js";

// The attestation-phase guard of the SPIRE roles: what the host's config declares against what
// the inventory asks for. The lab test (test/e2e/sprint3-rerun.test.ts) runs it on real hosts.

type AgentAttestor = Parameters<typeof agentPhaseConflict>[1];
type ServerAttestors = Parameters<typeof serverPhaseConflict>[1];

const agentCases: { found: string[]; wanted: AgentAttestor; refused: RegExp | undefined }[] = [
  { found: [], wanted: "join_token", refused: undefined },
  { found: ["join_token"], wanted: "join_token", refused: undefined },
  { found: ["tpm_devid"], wanted: "tpm_devid", refused: undefined },
  {
    found: ["tpm_devid"],
    wanted: "join_token",
    refused: /NodeAttestor "tpm_devid".*asks for join_token.*set spireAgentAttestor: tpm_devid/,
  },
  {
    found: ["join_token"],
    wanted: "tpm_devid",
    refused: /asks for tpm_devid.*sprint3-migrate\.ts.*keep spireAgentAttestor: join_token/,
  },
];

const serverCases: { found: string[]; wanted: ServerAttestors; refused: RegExp | undefined }[] = [
  { found: [], wanted: ["join_token"], refused: undefined },
  { found: ["join_token"], wanted: ["join_token"], refused: undefined },
  { found: ["join_token"], wanted: ["join_token", "tpm_devid"], refused: undefined },
  { found: ["join_token", "tpm_devid"], wanted: ["join_token", "tpm_devid"], refused: undefined },
  { found: ["join_token", "tpm_devid"], wanted: ["tpm_devid"], refused: undefined },
  { found: ["tpm_devid"], wanted: ["tpm_devid"], refused: undefined },
  {
    found: ["tpm_devid"],
    wanted: ["join_token"],
    refused: /would drop tpm_devid.*set spireNodeAttestors: \[tpm_devid\]/,
  },
  {
    found: ["tpm_devid"],
    wanted: ["join_token", "tpm_devid"],
    refused: /would bring join_token back; set spireNodeAttestors: \[tpm_devid\]/,
  },
  {
    found: ["join_token", "tpm_devid"],
    wanted: ["join_token"],
    refused: /would drop tpm_devid.*set spireNodeAttestors: \[join_token, tpm_devid\]/,
  },
];

describe("the spire-agent role's attestation phase", () => {
  it.each(agentCases)("agent.conf with $found, inventory $wanted", ({ found, wanted, refused }) => {
    const why = agentPhaseConflict(found, wanted);
    if (refused === undefined) expect(why).toBeUndefined();
    else expect(why).toMatch(refused);
  });
});

describe("the spire-server role's attestation phase", () => {
  it.each(serverCases)(
    "server.conf with $found, inventory $wanted",
    ({ found, wanted, refused }) => {
      const why = serverPhaseConflict(found, wanted);
      if (refused === undefined) expect(why).toBeUndefined();
      else expect(why).toMatch(refused);
    },
  );
});
