// `spire-server run`: the CA, the datastore, the agent API (TLS on bind_address:bind_port), the
// CLI API (HTTP on the unix socket_path), the federation bundle endpoint and health checks.
import { randomUUID, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { TLSSocket } from "node:tls";
import { dirname } from "node:path";
import { ApiError, log, readJson, reply, closeServers } from "../common/cli.js";
import { parseDuration } from "../common/hcl.js";
import { csrPublicKey, issueCert, newKeyPair, uriSans, type KeyPair } from "../common/pki.js";
import type { ServerConfig } from "../spire/config.js";
import {
  checkId,
  parseSelector,
  workloadEntriesFor,
  type AgentRecord,
  type AttestResult,
  type EntryRecord,
  type Selector,
  type SyncResult,
} from "../spire/shared.js";
import { ServerCa } from "./ca.js";
import { Datastore, datastorePath } from "./datastore.js";
import { TpmDevidVerifier } from "./tpm.js";

/** Typed settings from a validated server.conf. */
export function serverSettings(c: ServerConfig) {
  const s = c.server;
  const str = (k: string, d: string) => (s[k] as string | undefined) ?? d;
  const dur = (k: string, d: string) => parseDuration(str(k, d));
  const subject = (s.ca_subject as Record<string, unknown> | undefined) ?? {};
  const subjectParts = [
    ...((subject.country as string[] | undefined) ?? ["US"]).map((v) => `C=${v}`),
    ...((subject.organization as string[] | undefined) ?? ["SPIFFE"]).map((v) => `O=${v}`),
    ...(subject.common_name ? [`CN=${subject.common_name as string}`] : []),
  ];
  const federation = s.federation as Record<string, Record<string, unknown>> | undefined;
  const be = federation?.bundle_endpoint;
  const health = c.conf.health_checks as Record<string, unknown> | undefined;
  const km = c.km;
  const na = new Map(c.nodeAttestors.map((p) => [p.name, p.data]));
  return {
    td: c.td,
    bindAddress: str("bind_address", "0.0.0.0"),
    bindPort: (s.bind_port as number | undefined) ?? 8081,
    socketPath: str("socket_path", "/tmp/spire-server/private/api.sock"),
    dataDir: s.data_dir as string,
    caTtlMs: dur("ca_ttl", "24h"),
    caSubject: subjectParts.join(", "),
    x509TtlMs: dur("default_x509_svid_ttl", "1h"),
    jwtTtlMs: dur("default_jwt_svid_ttl", "5m"),
    agentTtlMs: s.agent_ttl ? dur("agent_ttl", "1h") : dur("default_x509_svid_ttl", "1h"),
    jwtIssuer: s.jwt_issuer as string | undefined,
    datastore: datastorePath(c.ds.data.connection_string as string),
    keysPath: km.name === "disk" ? (km.data.keys_path as string) : undefined,
    bundleEndpoint: be && {
      address: (be.address as string | undefined) ?? "0.0.0.0",
      port: (be.port as number | undefined) ?? 443,
      refreshHintS: Math.round(
        parseDuration((be.refresh_hint as string | undefined) ?? "5m") / 1000,
      ),
      profile: be.profile as { label: string; body: Record<string, unknown> } | undefined,
    },
    health: health?.listener_enabled
      ? {
          address: (health.bind_address as string | undefined) ?? "localhost",
          port: (health.bind_port as number | undefined) ?? 80,
          live: (health.live_path as string | undefined) ?? "/live",
          ready: (health.ready_path as string | undefined) ?? "/ready",
        }
      : undefined,
    joinToken: na.has("join_token"),
    tpmDevid: na.get("tpm_devid") as
      { devid_ca_path: string; endorsement_ca_path: string } | undefined,
  };
}

export type Settings = ReturnType<typeof serverSettings>;

const JOIN_TOKEN_GONE = "join token does not exist or has already been used";

/** The running server. */
export class Server {
  readonly store: Datastore;
  readonly ca: ServerCa;
  private svid!: { key: KeyPair; cert: X509Certificate };
  private agentApi?: https.Server;
  private bundleApi?: https.Server;
  private servers: (http.Server | https.Server)[] = [];
  private ready = false;
  private tpm?: TpmDevidVerifier;
  private timer?: NodeJS.Timeout;

  constructor(readonly s: Settings) {
    mkdirSync(s.dataDir, { recursive: true });
    this.store = new Datastore(s.datastore);
    this.store.flush();
    this.ca = new ServerCa(
      { td: s.td, caTtlMs: s.caTtlMs, subject: s.caSubject, keysPath: s.keysPath },
      this.store,
    );
    if (s.tpmDevid) this.tpm = new TpmDevidVerifier(s.td, s.tpmDevid);
  }

  async start(): Promise<void> {
    await this.ca.refresh();
    log("info", "X509 CA activated", {
      subject: this.ca.x509.cert.subject.replace(/\n/g, ","),
      expiration: this.ca.x509.cert.validTo,
    });
    log("info", "JWT key activated", { kid: this.ca.jwt.kid });
    await this.newServerSvid();
    await this.listenCli();
    await this.listenAgents();
    if (this.s.bundleEndpoint) await this.listenBundle();
    if (this.s.health) await this.listenHealth();
    this.timer = setInterval(() => void this.tick(), 30_000);
    this.ready = true;
    log("info", "Starting Server APIs", {
      address: `${this.s.bindAddress}:${this.s.bindPort}`,
      socket: this.s.socketPath,
    });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await closeServers(this.servers, this.s.socketPath);
  }

  private async tick() {
    try {
      const rotated = await this.ca.refresh();
      const half =
        (new Date(this.svid.cert.validFrom).getTime() +
          new Date(this.svid.cert.validTo).getTime()) /
        2;
      if (rotated || Date.now() > half) await this.newServerSvid();
      if (rotated) log("info", "CA rotated", { sequence: this.store.data.bundle.sequence });
    } catch (e) {
      log("error", "CA rotation failed", { error: (e as Error).message });
    }
  }

  /** The server's own X.509 SVID (spiffe://<td>/spire/server), used by its TLS listeners. */
  private async newServerSvid() {
    const key = await newKeyPair();
    const cert = await issueCert({
      subject: "C=US, O=SPIRE",
      issuer: { cert: this.ca.x509.cert, key: this.ca.x509.key.keys.privateKey },
      publicKey: key.keys.publicKey,
      signingKey: this.ca.x509.key.keys.privateKey,
      notAfter: this.notAfter(this.s.x509TtlMs),
      uris: [`spiffe://${this.s.td}/spire/server`],
      dnsNames: ["localhost"],
      serverAuth: true,
      clientAuth: true,
    });
    this.svid = { key, cert };
    for (const srv of [this.agentApi, this.bundleApi]) srv?.setSecureContext(this.tlsOptions());
  }

  private tlsOptions() {
    return {
      key: this.svid.key.privatePem,
      cert: this.svid.cert.toString() + this.ca.x509.cert.toString(),
      ca: this.ca.bundlePem(),
    };
  }

  /** An SVID's end: capped by the CA's own end, like the real server. */
  private notAfter(ttlMs: number): Date {
    return new Date(Math.min(Date.now() + ttlMs, new Date(this.ca.x509.cert.validTo).getTime()));
  }

  private listen(srv: http.Server | https.Server, where: string, port?: number, host?: string) {
    this.servers.push(srv);
    return new Promise<void>((done, fail) => {
      srv.once("error", (e) => fail(new Error(`cannot listen on ${where}: ${e.message}`)));
      if (port === undefined) srv.listen(where, done);
      else srv.listen(port, host, done);
    });
  }

  // ---- CLI API (unix socket) ----

  private async listenCli() {
    const path = this.s.socketPath;
    mkdirSync(dirname(path), { recursive: true });
    if (existsSync(path)) unlinkSync(path);
    const srv = http.createServer((req, res) => void this.handle(req, res, this.cliRoutes()));
    await this.listen(srv, path);
    chmodSync(path, 0o770);
  }

  private cliRoutes(): Record<string, Handler> {
    return {
      "GET /health": async () => ({ healthy: this.ready }),
      "POST /token": (b) => this.createToken(b),
      "GET /entries": async () => ({ entries: this.store.data.entries }),
      "POST /entries": (b) => this.createEntry(b),
      "POST /entries/update": (b) => this.updateEntry(b),
      "POST /entries/delete": (b) => this.deleteEntry(b),
      "GET /agents": async () => ({ agents: this.store.data.agents }),
      "POST /agents/evict": (b) => this.evictAgent(b),
      "GET /bundle": async () => ({
        pem: this.ca.bundlePem(),
        spiffe: this.ca.spiffeBundle(this.s.bundleEndpoint?.refreshHintS ?? 300),
      }),
    };
  }

  private async createToken(body: Record<string, unknown>) {
    const ttl = Number(body.ttl ?? 600);
    if (!Number.isInteger(ttl) || ttl <= 0)
      throw new ApiError(400, "ttl must be a positive integer");
    const value = randomUUID();
    const expiresAt = Math.floor(Date.now() / 1000) + ttl;
    const alias = body.spiffeId as string | undefined;
    if (alias) checkId(alias, this.s.td);
    this.store.update((d) => {
      d.tokens.push({ value, expiresAt });
      if (alias) {
        const agentId = `spiffe://${this.s.td}/spire/agent/join_token/${value}`;
        d.entries.push(
          newEntry({
            spiffeId: alias,
            parentId: agentId,
            selectors: [{ type: "spiffe_id", value: agentId }],
          }),
        );
      }
    });
    return { value, expires_at: String(expiresAt) };
  }

  private entryFrom(body: Record<string, unknown>, base?: EntryRecord): EntryRecord {
    const spiffeId = checkId(String(body.spiffeId ?? base?.spiffeId ?? ""), this.s.td);
    const parentId = body.node
      ? `spiffe://${this.s.td}/spire/server`
      : checkId(String(body.parentId ?? base?.parentId ?? ""), this.s.td);
    const selectors = body.selectors
      ? (body.selectors as string[]).map(parseSelector)
      : (base?.selectors ?? []);
    if (!selectors.length) throw new ApiError(400, "at least one selector is required");
    return {
      ...newEntry({ spiffeId, parentId, selectors }),
      ...(base ? { id: base.id, createdAt: base.createdAt, revision: base.revision + 1 } : {}),
      ...(body.entryId && !base ? { id: String(body.entryId) } : {}),
      x509SvidTtl: Number(body.x509SvidTtl ?? base?.x509SvidTtl ?? 0),
      jwtSvidTtl: Number(body.jwtSvidTtl ?? base?.jwtSvidTtl ?? 0),
      dnsNames: (body.dnsNames as string[] | undefined) ?? base?.dnsNames ?? [],
      admin: Boolean(body.admin ?? base?.admin ?? false),
      downstream: Boolean(body.downstream ?? base?.downstream ?? false),
    };
  }

  private async createEntry(body: Record<string, unknown>) {
    const entry = this.entryFrom(body);
    const same = (e: EntryRecord) =>
      e.spiffeId === entry.spiffeId &&
      e.parentId === entry.parentId &&
      e.selectors.length === entry.selectors.length &&
      e.selectors.every(
        (s, i) => s.type === entry.selectors[i]!.type && s.value === entry.selectors[i]!.value,
      );
    const existing = this.store.data.entries.find(same);
    if (existing)
      return { status: { code: 6, message: "similar entry already exists" }, entry: existing };
    if (this.store.data.entries.some((e) => e.id === entry.id))
      throw new ApiError(409, `an entry with ID ${entry.id} already exists`);
    this.store.update((d) => d.entries.push(entry));
    return { status: { code: 0, message: "OK" }, entry };
  }

  private async updateEntry(body: Record<string, unknown>) {
    const id = String(body.entryId ?? "");
    const index = this.store.data.entries.findIndex((e) => e.id === id);
    if (index < 0) throw new ApiError(404, `entry not found: ${id}`);
    const entry = this.entryFrom(body, this.store.data.entries[index]);
    this.store.update((d) => (d.entries[index] = entry));
    return { status: { code: 0, message: "OK" }, entry };
  }

  private async deleteEntry(body: Record<string, unknown>) {
    const id = String(body.entryId ?? "");
    if (!this.store.data.entries.some((e) => e.id === id))
      throw new ApiError(404, `entry not found: ${id}`);
    this.store.update((d) => (d.entries = d.entries.filter((e) => e.id !== id)));
    return { id };
  }

  private async evictAgent(body: Record<string, unknown>) {
    const id = String(body.spiffeId ?? "");
    if (!this.store.data.agents.some((a) => a.id === id))
      throw new ApiError(404, `agent not found`);
    this.store.update((d) => (d.agents = d.agents.filter((a) => a.id !== id)));
    log("info", "Agent evicted", { spiffe_id: id });
    return {};
  }

  // ---- Agent API (TLS) ----

  private async listenAgents() {
    const srv = https.createServer(
      { ...this.tlsOptions(), requestCert: true, rejectUnauthorized: false },
      (req, res) => void this.handle(req, res, this.agentRoutes()),
    );
    this.agentApi = srv;
    await this.listen(
      srv,
      `${this.s.bindAddress}:${this.s.bindPort}`,
      this.s.bindPort,
      this.s.bindAddress,
    );
  }

  private agentRoutes(): Record<string, Handler> {
    return {
      "POST /attest/join_token": (b) => this.attestJoinToken(b),
      "POST /attest/tpm_devid/start": async (b) => this.tpmOrFail().start(b),
      "POST /attest/tpm_devid/finish": async (b) => {
        const done = await this.tpmOrFail().finish(b);
        return this.admitAgent(
          done.agentId,
          "tpm_devid",
          done.selectors,
          String(b.csr ?? ""),
          true,
        );
      },
      "POST /agent/renew": async (b, req) => {
        const agent = this.callingAgent(req);
        return this.admitAgent(
          agent.id,
          agent.attestationType,
          agent.selectors,
          String(b.csr ?? ""),
          agent.canReattest,
        );
      },
      "GET /agent/sync": async (_b, req) => this.sync(this.callingAgent(req)),
      "POST /agent/svid": async (b, req) => this.workloadSvid(this.callingAgent(req), b),
      "POST /agent/jwt": async (b, req) => this.workloadJwt(this.callingAgent(req), b),
    };
  }

  private tpmOrFail(): TpmDevidVerifier {
    if (!this.tpm)
      throw new ApiError(400, 'failed to attest: could not find node attestor type "tpm_devid"');
    return this.tpm;
  }

  private async attestJoinToken(body: Record<string, unknown>): Promise<AttestResult> {
    if (!this.s.joinToken)
      throw new ApiError(400, 'failed to attest: could not find node attestor type "join_token"');
    const value = String(body.token ?? "");
    const now = Math.floor(Date.now() / 1000);
    const token = this.store.data.tokens.find((t) => t.value === value);
    // Spent and expired tokens are removed; either way the token is gone.
    this.store.update(
      (d) => (d.tokens = d.tokens.filter((t) => t.value !== value && t.expiresAt > now)),
    );
    if (!token || token.expiresAt <= now) {
      log("error", "Failed to attest agent", { attestor: "join_token", error: JOIN_TOKEN_GONE });
      throw new ApiError(403, `failed to attest: ${JOIN_TOKEN_GONE}`);
    }
    const agentId = `spiffe://${this.s.td}/spire/agent/join_token/${value}`;
    return this.admitAgent(agentId, "join_token", [], String(body.csr ?? ""), false);
  }

  /** Signs an agent SVID for the CSR and records the agent. */
  private async admitAgent(
    agentId: string,
    type: string,
    selectors: Selector[],
    csr: string,
    canReattest: boolean,
  ): Promise<AttestResult> {
    const banned = this.store.data.agents.find((a) => a.id === agentId)?.banned;
    if (banned) throw new ApiError(403, "failed to attest: agent is banned");
    const { key } = await csrPublicKey(csr).catch((e: Error) => {
      throw new ApiError(400, `invalid CSR: ${e.message}`);
    });
    const cert = await issueCert({
      subject: "C=US, O=SPIRE",
      issuer: { cert: this.ca.x509.cert, key: this.ca.x509.key.keys.privateKey },
      publicKey: key,
      signingKey: this.ca.x509.key.keys.privateKey,
      notAfter: this.notAfter(this.s.agentTtlMs),
      uris: [agentId],
      serverAuth: true,
      clientAuth: true,
    });
    const record: AgentRecord = {
      id: agentId,
      attestationType: type,
      serial: BigInt(`0x${cert.serialNumber}`).toString(),
      expiresAt: Math.floor(new Date(cert.validTo).getTime() / 1000),
      selectors,
      banned: false,
      canReattest,
    };
    this.store.update((d) => (d.agents = [...d.agents.filter((a) => a.id !== agentId), record]));
    log("info", "Agent SVID issued", { spiffe_id: agentId, attestor: type, serial: record.serial });
    return {
      svid: cert.toString() + this.ca.x509.cert.toString(),
      bundle: this.ca.bundlePem(),
      reattestable: canReattest,
    };
  }

  /** The agent calling over mutual TLS: its SVID must chain to the bundle and be its current one. */
  private callingAgent(req: http.IncomingMessage): AgentRecord {
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate();
    if (!peer?.raw) throw new ApiError(401, "an agent SVID is required");
    const cert = new X509Certificate(peer.raw);
    if (
      !socket.authorized &&
      !this.ca.roots().some((r) => cert.checkIssued(r) && cert.verify(r.publicKey))
    )
      throw new ApiError(401, `agent SVID is not trusted: ${String(socket.authorizationError)}`);
    const id = uriSans(cert)[0];
    const serial = BigInt(`0x${cert.serialNumber}`).toString();
    const agent = this.store.data.agents.find((a) => a.id === id);
    if (!agent || agent.serial !== serial || agent.banned)
      throw new ApiError(403, `agent "${id}" is not attested or no longer valid`);
    return agent;
  }

  private sync(agent: AgentRecord): SyncResult {
    const entries = workloadEntriesFor(agent, this.store.data.entries, this.s.td);
    return {
      bundle: this.ca.bundlePem(),
      jwks: this.ca.jwks(),
      entries: entries.map((e) => ({
        id: e.id,
        spiffeId: e.spiffeId,
        selectors: e.selectors,
        x509SvidTtl: e.x509SvidTtl,
        jwtSvidTtl: e.jwtSvidTtl,
        dnsNames: e.dnsNames,
      })),
    };
  }

  private entryFor(agent: AgentRecord, id: unknown): EntryRecord {
    const entry = workloadEntriesFor(agent, this.store.data.entries, this.s.td).find(
      (e) => e.id === id,
    );
    if (!entry) throw new ApiError(403, `entry ${String(id)} is not authorized for ${agent.id}`);
    return entry;
  }

  private async workloadSvid(agent: AgentRecord, body: Record<string, unknown>) {
    const entry = this.entryFor(agent, body.entryId);
    const { key } = await csrPublicKey(String(body.csr ?? ""));
    const cert = await issueCert({
      subject: "C=US, O=SPIRE",
      issuer: { cert: this.ca.x509.cert, key: this.ca.x509.key.keys.privateKey },
      publicKey: key,
      signingKey: this.ca.x509.key.keys.privateKey,
      notAfter: this.notAfter(entry.x509SvidTtl ? entry.x509SvidTtl * 1000 : this.s.x509TtlMs),
      uris: [entry.spiffeId],
      dnsNames: entry.dnsNames,
      serverAuth: true,
      clientAuth: true,
    });
    return { chain: cert.toString() + this.ca.x509.cert.toString() };
  }

  private async workloadJwt(agent: AgentRecord, body: Record<string, unknown>) {
    const entry = this.entryFor(agent, body.entryId);
    const audience = (body.audience as string[] | undefined) ?? [];
    if (!audience.length) throw new ApiError(400, "audience must be specified");
    const now = Math.floor(Date.now() / 1000);
    const ttl = entry.jwtSvidTtl || Math.round(this.s.jwtTtlMs / 1000);
    const claims = {
      ...(this.s.jwtIssuer ? { iss: this.s.jwtIssuer } : {}),
      sub: entry.spiffeId,
      aud: audience,
      exp: Math.min(now + ttl, this.ca.jwt.notAfter),
      iat: now,
    };
    return { token: this.ca.signJwt(claims) };
  }

  // ---- Federation bundle endpoint ----

  private async listenBundle() {
    const be = this.s.bundleEndpoint!;
    const profile = be.profile;
    let tls: { key: string; cert: string } = this.tlsOptions();
    if (profile?.label === "https_web") {
      const file = profile.body.serving_cert_file as Record<string, string> | undefined;
      if (!file)
        throw new Error(
          'bundle endpoint profile "https_web": only serving_cert_file is supported by this server',
        );
      tls = {
        key: readFileSync(file.key_file_path!, "utf8"),
        cert: readFileSync(file.cert_file_path!, "utf8"),
      };
    }
    const srv = https.createServer(tls, (req, res) => {
      if (req.url !== "/" && req.url?.split("?")[0] !== "/")
        return reply(res, 404, { error: "not found" });
      if (req.method !== "GET") return reply(res, 405, { error: "method not allowed" });
      reply(res, 200, this.ca.spiffeBundle(be.refreshHintS));
    });
    if (profile?.label !== "https_web") this.bundleApi = srv;
    await this.listen(srv, `${be.address}:${be.port}`, be.port, be.address);
    log("info", "Serving bundle endpoint", { addr: `${be.address}:${be.port}` });
  }

  // ---- Health checks ----

  private async listenHealth() {
    const h = this.s.health!;
    const srv = http.createServer((req, res) => {
      if (req.url === h.live) return reply(res, 200, { live: true });
      if (req.url === h.ready) return reply(res, this.ready ? 200 : 503, { ready: this.ready });
      reply(res, 404, { error: "not found" });
    });
    await this.listen(srv, `${h.address}:${h.port}`, h.port, h.address);
  }

  // ---- Request plumbing ----

  private async handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    routes: Record<string, Handler>,
  ) {
    const route = routes[`${req.method} ${req.url?.split("?")[0]}`];
    if (!route) return reply(res, 404, { error: `no such API: ${req.method} ${req.url}` });
    try {
      reply(res, 200, await route(await readJson(req), req));
    } catch (e) {
      const status = e instanceof ApiError ? e.status : 500;
      if (status === 500)
        log("error", "API call failed", { path: req.url, error: (e as Error).message });
      reply(res, status, { error: (e as Error).message });
    }
  }
}

type Handler = (body: Record<string, unknown>, req: http.IncomingMessage) => Promise<unknown>;

function newEntry(p: { spiffeId: string; parentId: string; selectors: Selector[] }): EntryRecord {
  return {
    id: randomUUID(),
    ...p,
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    dnsNames: [],
    admin: false,
    downstream: false,
    revision: 0,
    createdAt: Math.floor(Date.now() / 1000),
  };
}
