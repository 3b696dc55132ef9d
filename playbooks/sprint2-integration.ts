import { definePlaybook, play } from "../engine/index.js";
import { devid } from "../roles/devid/index.js";
import { nginxJwks } from "../roles/nginx-jwks/index.js";
import { openbao } from "../roles/openbao/index.js";
import { spireAgent } from "../roles/spire-agent/index.js";
import { spireEntries } from "../roles/spire-server/index.js";

/**
 * Sprint 2: integration. The SPIRE server's host gets an agent of its own, so OpenBao can be a
 * workload there; nginx serves the bundle's keys as a JWKS over TLS; OpenBao trusts JWT-SVIDs
 * through it; and every host gets a TPM DevID key with a 90-day step-ca certificate. The agent's
 * attestor comes from the inventory (`spireAgentAttestor`), as in sprint 1.
 */
export default definePlaybook("Sprint 2: integration", [
  play("servers", { name: "SPIRE agent on the server host", roles: [spireAgent()] }),
  play("servers", {
    name: "OpenBao is a SPIRE workload",
    tasks: (vars) => [
      spireEntries({
        name: "the OpenBao workload entry",
        socketPath: String(vars.spireServerSocket ?? "/run/spire/server/api.sock"),
        trustDomain: String(vars.trustDomain),
        entries: [
          {
            spiffeId: `spiffe://${String(vars.trustDomain)}/workload/openbao`,
            parentId: `spiffe://${String(vars.trustDomain)}/host/${String(vars.inventoryHostname)}`,
            selectors: ["unix:user:openbao"],
          },
        ],
      }),
    ],
  }),
  play("jwks", { name: "JWKS over TLS", roles: [nginxJwks()] }),
  play("openbao", { name: "OpenBao JWT auth", roles: [openbao({ openbaoJwtAuth: true })] }),
  play("all", { name: "TPM DevID keys and certificates", roles: [devid()] }),
]);
