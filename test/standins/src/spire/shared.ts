// What the SPIRE server and agent stand-ins share: records, selectors, the JSON shapes the real
// CLI prints (protojson with proto field names), and the messages of the agent <-> server protocol.

/** A selector such as unix:uid:999 or tpm_devid:subject:cn:auth.funlab.casa. */
export interface Selector {
  type: string;
  value: string;
}

/** Parses "type:value" (the value may contain more colons). */
export function parseSelector(text: string): Selector {
  const at = text.indexOf(":");
  if (at <= 0 || at === text.length - 1)
    throw new Error(`selector "${text}" must be formatted as type:value`);
  return { type: text.slice(0, at), value: text.slice(at + 1) };
}

export function selectorText(s: Selector): string {
  return `${s.type}:${s.value}`;
}

/** Every selector of `want` is in `have`. */
export function subsetOf(want: Selector[], have: Selector[]): boolean {
  const set = new Set(have.map(selectorText));
  return want.every((s) => set.has(selectorText(s)));
}

/** A SPIFFE ID split the way the API prints it. */
export function idObject(id: string): { trust_domain: string; path: string } {
  const m = /^spiffe:\/\/([^/]+)(\/.*)?$/.exec(id);
  if (!m) throw new Error(`"${id}" is not a SPIFFE ID: spiffeid: invalid scheme`);
  return { trust_domain: m[1]!, path: m[2] ?? "" };
}

/** Checks a SPIFFE ID belongs to the trust domain; returns it unchanged. */
export function checkId(id: string, td: string): string {
  const { trust_domain } = idObject(id);
  if (trust_domain !== td) throw new Error(`"${id}" is not a member of trust domain "${td}"`);
  return id;
}

/** A registration entry as the datastore keeps it. */
export interface EntryRecord {
  id: string;
  spiffeId: string;
  parentId: string;
  selectors: Selector[];
  x509SvidTtl: number;
  jwtSvidTtl: number;
  dnsNames: string[];
  admin: boolean;
  downstream: boolean;
  revision: number;
  createdAt: number;
}

/** An attested agent as the datastore keeps it. */
export interface AgentRecord {
  id: string;
  attestationType: string;
  serial: string;
  expiresAt: number;
  selectors: Selector[];
  banned: boolean;
  canReattest: boolean;
}

/** types.Entry in protojson form, as `entry show -output json` prints it. */
export function entryJson(e: EntryRecord) {
  return {
    id: e.id,
    spiffe_id: idObject(e.spiffeId),
    parent_id: idObject(e.parentId),
    selectors: e.selectors,
    x509_svid_ttl: e.x509SvidTtl,
    federates_with: [],
    admin: e.admin,
    downstream: e.downstream,
    expires_at: "0",
    dns_names: e.dnsNames,
    revision_number: String(e.revision),
    store_svid: false,
    jwt_svid_ttl: e.jwtSvidTtl,
    hint: "",
    created_at: String(e.createdAt),
  };
}

/** types.Agent in protojson form, as `agent list|show -output json` prints it. */
export function agentJson(a: AgentRecord) {
  return {
    id: idObject(a.id),
    attestation_type: a.attestationType,
    x509svid_serial_number: a.serial,
    x509svid_expires_at: String(a.expiresAt),
    selectors: a.selectors,
    banned: a.banned,
    can_reattest: a.canReattest,
  };
}

/** The pretty form of one entry, as `entry show|create` print it. */
export function entryPretty(e: EntryRecord): string {
  const lines = [
    `Entry ID         : ${e.id}`,
    `SPIFFE ID        : ${e.spiffeId}`,
    `Parent ID        : ${e.parentId}`,
    `Revision         : ${e.revision}`,
    `X509-SVID TTL    : ${e.x509SvidTtl || "default"}`,
    `JWT-SVID TTL     : ${e.jwtSvidTtl || "default"}`,
    ...e.selectors.map((s) => `Selector         : ${selectorText(s)}`).sort(),
    ...e.dnsNames.map((d) => `DNS name         : ${d}`),
    ...(e.admin ? ["Admin            : true"] : []),
  ];
  return lines.join("\n") + "\n\n";
}

/** The pretty form of one agent, as `agent list|show` print it. */
export function agentPretty(a: AgentRecord): string {
  return [
    `SPIFFE ID         : ${a.id}`,
    `Attestation type  : ${a.attestationType}`,
    `Expiration time   : ${new Date(a.expiresAt * 1000).toISOString()}`,
    `Serial number     : ${a.serial}`,
    `Can re-attest     : ${a.canReattest}`,
    ...a.selectors.map((s) => `Selectors         : ${selectorText(s)}`),
  ].join("\n");
}

/**
 * The entries that make up an agent's node identity: node aliases (parent = the server, all
 * their selectors held by the agent) and the alias a join token with -spiffeID creates (parent =
 * the agent, selector spiffe_id:<agent>). Every agent holds the implicit spiffe_id selector.
 */
export function nodeEntriesFor(agent: AgentRecord, entries: EntryRecord[], td: string) {
  const held = [...agent.selectors, { type: "spiffe_id", value: agent.id }];
  const serverId = `spiffe://${td}/spire/server`;
  return entries.filter(
    (e) =>
      e.selectors.length > 0 &&
      (e.parentId === serverId || e.parentId === agent.id) &&
      subsetOf(e.selectors, held),
  );
}

/** The workload entries an agent may serve: parented on the agent or on one of its node IDs. */
export function workloadEntriesFor(agent: AgentRecord, entries: EntryRecord[], td: string) {
  const nodes = nodeEntriesFor(agent, entries, td);
  const parents = new Set([agent.id, ...nodes.map((n) => n.spiffeId)]);
  return entries.filter((e) => parents.has(e.parentId) && !nodes.includes(e));
}

// ---- The agent <-> server protocol (JSON over HTTPS on bind_address:bind_port) ----
//
// POST /attest/join_token      {token, csr}                       -> AttestResult
// POST /attest/tpm_devid/start {devidChain, devidPub, ekCert}      -> TpmChallenge
// POST /attest/tpm_devid/finish {session, signature, secret, csr}  -> AttestResult
// POST /agent/renew   (client cert = agent SVID) {csr}             -> AttestResult
// GET  /agent/sync    (client cert = agent SVID)                   -> SyncResult
// POST /agent/svid    (client cert) {entryId, csr}                 -> {chain}
// POST /agent/jwt     (client cert) {entryId, audience}            -> {token}
// Errors: {error} with an HTTP status.

export interface AttestResult {
  /** The agent SVID chain, leaf first, PEM. */
  svid: string;
  /** The trust bundle's X.509 roots, PEM. */
  bundle: string;
  reattestable: boolean;
}

export interface TpmChallenge {
  session: string;
  /** Base64 nonce the DevID key signs. */
  nonce: string;
  /** Base64 tpm2_makecredential output bound to the EK and the DevID key's name. */
  credential: string;
}

export interface SyncEntry {
  id: string;
  spiffeId: string;
  selectors: Selector[];
  x509SvidTtl: number;
  jwtSvidTtl: number;
  dnsNames: string[];
}

export interface SyncResult {
  bundle: string;
  jwks: { keys: Record<string, unknown>[] };
  entries: SyncEntry[];
}
