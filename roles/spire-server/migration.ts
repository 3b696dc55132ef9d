import type { TaskContext } from "../../engine/index.js";

/**
 * What the server's own lists say about the move from join_token to tpm_devid. A host is
 * known by its node-alias entries (`spiffe://<td>/host/<name>`): the alias a join token made
 * names its agent (`spiffe_id:<agent ID>`), the DevID alias names the certificate's subject CN.
 */
export interface MigrationState {
  /** Hosts whose join_token agent is still listed by the server. */
  joinTokenHosts: string[];
  /** Hosts with an attested tpm_devid agent. */
  devidHosts: string[];
  /** Join-token agents of hosts that also have a tpm_devid agent (safe to evict). */
  staleJoinTokenAgents: string[];
  /** Join-token agents no DevID agent has replaced yet. */
  unmigratedJoinTokenAgents: string[];
  /** True when every listed agent attests with tpm_devid, or has a tpm_devid replacement. */
  allMigrated: boolean;
}

interface RawId {
  trust_domain?: string;
  path?: string;
}
interface RawSelector {
  type?: string;
  value?: string;
}
interface RawAgent {
  id?: RawId;
  attestation_type?: string;
  selectors?: RawSelector[];
}
interface RawEntry {
  spiffe_id?: RawId;
  parent_id?: RawId;
  selectors?: RawSelector[];
}

const idText = (id: RawId | undefined) =>
  id?.trust_domain ? `spiffe://${id.trust_domain}${id.path ?? ""}` : "";
const selectorText = (s: RawSelector) => `${s.type ?? ""}:${s.value ?? ""}`;

/**
 * Decides from `spire-server agent list -output json` and `entry show -output json` which
 * hosts have moved. Every agent the server lists counts, not only the hosts of a `--limit`.
 */
export function migrationState(agentList: string, entryList: string): MigrationState {
  const agents = ((JSON.parse(agentList) as { agents?: RawAgent[] }).agents ?? []).map((a) => ({
    id: idText(a.id),
    type: a.attestation_type ?? "",
    selectors: (a.selectors ?? []).map(selectorText),
  }));
  const entries = ((JSON.parse(entryList) as { entries?: RawEntry[] }).entries ?? []).map((e) => ({
    spiffeId: idText(e.spiffe_id),
    parentId: idText(e.parent_id),
    selectors: (e.selectors ?? []).map(selectorText),
  }));
  // A join token's alias is an entry parented on its agent; a DevID alias is a node entry.
  const hostOf = (agent: (typeof agents)[number]) =>
    entries.find(
      (e) =>
        e.spiffeId.includes("/host/") &&
        (agent.type === "join_token"
          ? e.parentId === agent.id
          : e.parentId.endsWith("/spire/server") &&
            e.selectors.length > 0 &&
            e.selectors.every((s) => agent.selectors.includes(s))),
    )?.spiffeId ?? `(no alias) ${agent.id}`;
  const joinToken = agents.filter((a) => a.type === "join_token");
  const devid = agents.filter((a) => a.type === "tpm_devid");
  const devidHosts = [...new Set(devid.map(hostOf))];
  const stale = joinToken.filter((a) => devidHosts.includes(hostOf(a)));
  const unmigrated = joinToken.filter((a) => !devidHosts.includes(hostOf(a)));
  return {
    joinTokenHosts: [...new Set(joinToken.map(hostOf))],
    devidHosts,
    staleJoinTokenAgents: stale.map((a) => a.id),
    unmigratedJoinTokenAgents: unmigrated.map((a) => a.id),
    allMigrated: devid.length > 0 && unmigrated.length === 0,
  };
}

/**
 * The migration state from two registered results, or undefined when they are missing (check
 * mode against a server that does not run yet).
 */
export function registeredMigrationState(
  ctx: TaskContext,
  agents: string,
  entries: string,
): MigrationState | undefined {
  const a = ctx.registered[agents];
  const e = ctx.registered[entries];
  if (!a || !e || a.rc !== 0 || e.rc !== 0) return undefined;
  if (typeof a.stdout !== "string" || typeof e.stdout !== "string") return undefined;
  return migrationState(a.stdout, e.stdout);
}
