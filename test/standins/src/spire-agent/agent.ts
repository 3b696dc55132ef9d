// `spire-agent run`: node attestation (join_token or tpm_devid), the cached SVID in data_dir,
// renewal, the sync loop with the server, the Workload API on socket_path and health checks.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { dirname, join } from "node:path";
import { log, readJson, reply, closeServers } from "../common/cli.js";
import { writeFileAtomic } from "../common/files.js";
import {
  loadKeyPair,
  makeCsr,
  newKeyPair,
  parseCerts,
  uriSans,
  verifyChain,
  type KeyPair,
} from "../common/pki.js";
import type { AgentConfig } from "../spire/config.js";
import {
  subsetOf,
  type AttestResult,
  type SyncEntry,
  type SyncResult,
  type TpmChallenge,
} from "../spire/shared.js";
import { peerOf, unixSelectors } from "./peer.js";
import { DevidTpm, type TpmDevidConf } from "./tpm.js";

/** Typed settings from a validated agent.conf plus the command line. */
export function agentSettings(
  c: AgentConfig,
  flags: { joinToken?: string; joinTokenFile?: string },
) {
  const a = c.agent;
  const health = c.conf.health_checks as Record<string, unknown> | undefined;
  const dataDir = (a.data_dir as string | undefined) ?? process.cwd();
  const tokenFile = flags.joinTokenFile ?? (a.join_token_file as string | undefined);
  return {
    td: c.td,
    serverAddress: a.server_address as string,
    serverPort: (a.server_port as number | undefined) ?? 8081,
    dataDir,
    socketPath: (a.socket_path as string | undefined) ?? "/tmp/spire-agent/public/api.sock",
    trustBundlePath: a.trust_bundle_path as string | undefined,
    trustBundleFormat: (a.trust_bundle_format as string | undefined) ?? "pem",
    insecureBootstrap: a.insecure_bootstrap === true,
    joinToken: () =>
      flags.joinToken ??
      (a.join_token as string | undefined) ??
      (tokenFile ? readFileSync(tokenFile, "utf8").trim() : undefined),
    attestor: c.na.name,
    tpm: c.na.name === "tpm_devid" ? (c.na.data as unknown as TpmDevidConf) : undefined,
    keysDir: c.km.name === "disk" ? (c.km.data.directory as string) : undefined,
    health: health?.listener_enabled
      ? {
          address: (health.bind_address as string | undefined) ?? "localhost",
          port: (health.bind_port as number | undefined) ?? 80,
          live: (health.live_path as string | undefined) ?? "/live",
          ready: (health.ready_path as string | undefined) ?? "/ready",
        }
      : undefined,
  };
}

export type Settings = ReturnType<typeof agentSettings>;

interface AgentData {
  format: "omens-spire-standin-agent-data/1";
  spiffe_id: string;
  attestor: string;
  reattestable: boolean;
  /** The agent SVID chain, leaf first, PEM. */
  svid: string;
  /** The trust bundle, PEM. */
  bundle: string;
}

/** An error the agent cannot get past: it is logged and the agent exits non-zero. */
export class FatalError extends Error {}

/** The running agent. */
export class Agent {
  private svid!: { chain: X509Certificate[]; key: KeyPair; reattestable: boolean };
  private bundle: X509Certificate[] = [];
  private jwks: SyncResult["jwks"] = { keys: [] };
  private entries: SyncEntry[] = [];
  private connected = false;
  private lastSync = 0;
  private timer?: NodeJS.Timeout;
  private servers: http.Server[] = [];

  constructor(readonly s: Settings) {}

  private get dataFile() {
    return join(this.s.dataDir, "agent-data.json");
  }
  private get keysFile() {
    return join(this.s.keysDir ?? this.s.dataDir, "keys.json");
  }

  get spiffeId(): string {
    return uriSans(this.svid.chain[0]!)[0] ?? "";
  }

  get healthy(): boolean {
    const leaf = this.svid?.chain[0];
    return (
      !!leaf &&
      new Date(leaf.validTo) > new Date() &&
      this.connected &&
      Date.now() - this.lastSync < 30_000
    );
  }

  async start(): Promise<void> {
    mkdirSync(this.s.dataDir, { recursive: true });
    const cached = await this.loadCached();
    if (cached) {
      this.svid = cached.svid;
      this.bundle = cached.bundle;
      log("info", "SVID loaded", {
        spiffe_id: this.spiffeId,
        expiration: this.svid.chain[0]!.validTo,
      });
    } else {
      this.bundle = this.bootstrapBundle();
      await this.attest();
    }
    await this.syncOnce();
    if (this.needsRenewal()) await this.renew();
    await this.listenWorkload();
    if (this.s.health) await this.listenHealth();
    this.timer = setInterval(() => void this.tick(), 5_000);
    log("info", "Starting Workload and SDS APIs", { address: this.s.socketPath });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await closeServers(this.servers, this.s.socketPath);
  }

  // ---- Cache (agent-data.json in data_dir, keys.json in the KeyManager folder) ----

  /** A cached SVID that is still valid, whose key is present and which chains to the cached bundle. */
  private async loadCached() {
    if (!existsSync(this.dataFile)) return undefined;
    let data: AgentData;
    try {
      data = JSON.parse(readFileSync(this.dataFile, "utf8")) as AgentData;
    } catch (e) {
      log("warning", "Could not read agent data; attesting again", {
        path: this.dataFile,
        error: (e as Error).message,
      });
      return undefined;
    }
    const chain = parseCerts(data.svid ?? "");
    const bundle = parseCerts(data.bundle ?? "");
    const pem = this.readKeys()["agent-svid"];
    if (!chain.length || !pem) {
      log("info", "No usable SVID in the agent data; attesting");
      return undefined;
    }
    const leaf = chain[0]!;
    try {
      verifyChain(chain, bundle);
    } catch (e) {
      log("warning", "Cached SVID is expired or not trusted; attesting", {
        error: (e as Error).message,
      });
      return undefined;
    }
    if (!leaf.checkPrivateKey(createPrivateKey(pem))) {
      log("warning", "Cached SVID does not match the agent key; attesting");
      return undefined;
    }
    return {
      svid: { chain, key: await loadKeyPair(pem), reattestable: data.reattestable },
      bundle,
    };
  }

  private readKeys(): Record<string, string> {
    if (!existsSync(this.keysFile)) return {};
    return (
      (JSON.parse(readFileSync(this.keysFile, "utf8")) as { keys?: Record<string, string> }).keys ??
      {}
    );
  }

  private save() {
    writeFileAtomic(
      this.keysFile,
      JSON.stringify({ keys: { "agent-svid": this.svid.key.privatePem } }, null, 2) + "\n",
    );
    const data: AgentData = {
      format: "omens-spire-standin-agent-data/1",
      spiffe_id: this.spiffeId,
      attestor: this.s.attestor,
      reattestable: this.svid.reattestable,
      svid: this.svid.chain.map((c) => c.toString()).join(""),
      bundle: this.bundle.map((c) => c.toString()).join(""),
    };
    writeFileAtomic(this.dataFile, JSON.stringify(data, null, 2) + "\n");
  }

  private bootstrapBundle(): X509Certificate[] {
    if (this.s.insecureBootstrap)
      throw new FatalError("insecure_bootstrap is not supported by this agent");
    const path = this.s.trustBundlePath;
    if (!path)
      throw new FatalError(
        "trust_bundle_url is not supported by this agent: use trust_bundle_path",
      );
    if (this.s.trustBundleFormat !== "pem")
      throw new FatalError(
        `trust_bundle_format "${this.s.trustBundleFormat}" is not supported: use pem`,
      );
    let certs: X509Certificate[];
    try {
      certs = parseCerts(readFileSync(path, "utf8"));
    } catch (e) {
      throw new FatalError(`could not parse trust bundle: ${(e as Error).message}`);
    }
    if (!certs.length)
      throw new FatalError(`could not parse trust bundle: no certificates in ${path}`);
    return certs;
  }

  // ---- Attestation and renewal ----

  private async attest(): Promise<void> {
    const key = await newKeyPair();
    const csr = await makeCsr(key.keys);
    let result: AttestResult;
    if (this.s.attestor === "join_token") {
      const token = this.s.joinToken();
      if (!token)
        throw new FatalError(
          "failed to attest: join token is required (-joinToken, -joinTokenFile or join_token)",
        );
      result = await this.call<AttestResult>("POST", "/attest/join_token", { token, csr }, false);
    } else {
      result = await this.attestTpm(csr);
    }
    this.adopt(result, key);
    this.save();
    log("info", "Node attestation was successful", {
      spiffe_id: this.spiffeId,
      reattestable: result.reattestable,
    });
  }

  private async attestTpm(csr: string): Promise<AttestResult> {
    const conf = this.s.tpm!;
    const tpm = new DevidTpm(conf);
    try {
      let devidChain: string;
      try {
        devidChain = readFileSync(conf.devid_cert_path, "utf8");
      } catch (e) {
        throw new FatalError(`unable to load DevID certificate: ${(e as Error).message}`);
      }
      tpm.load();
      const challenge = await this.call<TpmChallenge>(
        "POST",
        "/attest/tpm_devid/start",
        {
          devidChain,
          devidPub: tpm.devidPublic().toString("base64"),
          ekCert: tpm.ekCertificate().toString("base64"),
        },
        false,
      );
      const signature = tpm.sign(Buffer.from(challenge.nonce, "base64"));
      const secret = tpm.activate(Buffer.from(challenge.credential, "base64"));
      return await this.call<AttestResult>(
        "POST",
        "/attest/tpm_devid/finish",
        {
          session: challenge.session,
          signature: signature.toString("base64"),
          secret: secret.toString("base64"),
          csr,
        },
        false,
      );
    } finally {
      tpm.close();
    }
  }

  private adopt(result: AttestResult, key: KeyPair) {
    const chain = parseCerts(result.svid);
    const bundle = parseCerts(result.bundle);
    verifyChain(chain, bundle);
    this.svid = { chain, key, reattestable: result.reattestable };
    this.bundle = bundle;
  }

  /** Past half its life, counted from issuance (the server backdates notBefore by 10 s). */
  private needsRenewal(): boolean {
    const leaf = this.svid.chain[0]!;
    const from = new Date(leaf.validFrom).getTime() + 10_000;
    const to = new Date(leaf.validTo).getTime();
    return Date.now() > from + (to - from) / 2;
  }

  private async renew(): Promise<void> {
    const key = await newKeyPair();
    const result = await this.call<AttestResult>(
      "POST",
      "/agent/renew",
      { csr: await makeCsr(key.keys) },
      true,
    );
    this.adopt(result, key);
    this.save();
    log("info", "Renewed agent SVID", {
      spiffe_id: this.spiffeId,
      expiration: this.svid.chain[0]!.validTo,
    });
  }

  private async syncOnce(): Promise<void> {
    try {
      const res = await this.call<SyncResult>("GET", "/agent/sync", undefined, true);
      this.entries = res.entries;
      this.jwks = res.jwks;
      const bundle = parseCerts(res.bundle);
      const changed =
        bundle.map((c) => c.fingerprint256).join() !==
        this.bundle.map((c) => c.fingerprint256).join();
      this.bundle = bundle;
      if (changed) this.save();
      if (!this.connected) log("info", "Synced with the server", { entries: res.entries.length });
      this.connected = true;
      this.lastSync = Date.now();
    } catch (e) {
      if (this.connected || this.lastSync === 0)
        log("error", "Failed to sync with the server", { error: (e as Error).message });
      this.connected = false;
      if (e instanceof HttpError && e.status === 403 && this.svid.reattestable) {
        log("info", "Agent is no longer attested; re-attesting");
        await this.attest().catch((err: Error) =>
          log("error", "Re-attestation failed", { error: err.message }),
        );
      }
    }
  }

  private async tick() {
    try {
      if (this.needsRenewal()) await this.renew();
    } catch (e) {
      log("error", "Could not renew the agent SVID", { error: (e as Error).message });
    }
    await this.syncOnce();
  }

  /** A call to the server over TLS, trusting the bundle and checking the server's SPIFFE ID. */
  call<T>(method: string, path: string, body: unknown, mtls: boolean): Promise<T> {
    const serverId = `spiffe://${this.s.td}/spire/server`;
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: this.s.serverAddress,
          port: this.s.serverPort,
          method,
          path,
          ca: this.bundle.map((c) => c.toString()),
          ...(mtls
            ? {
                key: this.svid.key.privatePem,
                cert: this.svid.chain.map((c) => c.toString()).join(""),
              }
            : {}),
          headers: { "Content-Type": "application/json" },
          timeout: 15_000,
          checkServerIdentity: (_host, cert) =>
            (cert.subjectaltname ?? "").split(", ").includes(`URI:${serverId}`)
              ? undefined
              : new Error(
                  `server certificate is not for ${serverId} (${cert.subjectaltname ?? "no SAN"})`,
                ),
        },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("end", () => {
            let data: Record<string, unknown>;
            try {
              data = JSON.parse(text || "{}") as Record<string, unknown>;
            } catch {
              return reject(new Error(`bad reply from the server: ${text.slice(0, 200)}`));
            }
            if (res.statusCode !== 200)
              return reject(new HttpError(res.statusCode ?? 0, String(data.error)));
            resolve(data as T);
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", (e) =>
        reject(
          new Error(
            `cannot reach the server at ${this.s.serverAddress}:${this.s.serverPort}: ${e.message}`,
          ),
        ),
      );
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  // ---- Workload API (HTTP on the unix socket) ----

  private async listenWorkload() {
    const path = this.s.socketPath;
    mkdirSync(dirname(path), { recursive: true });
    if (existsSync(path)) unlinkSync(path);
    const srv = http.createServer((req, res) => void this.workload(req, res));
    this.servers.push(srv);
    await new Promise<void>((done, fail) => {
      srv.once("error", (e) => fail(new Error(`cannot listen on ${path}: ${e.message}`)));
      srv.listen(path, done);
    });
    chmodSync(path, 0o777);
  }

  private async workload(req: http.IncomingMessage, res: http.ServerResponse) {
    try {
      if (req.method === "GET" && req.url === "/health")
        return reply(res, 200, {
          healthy: this.healthy,
          connected: this.connected,
          spiffe_id: this.spiffeId,
        });
      const body = await readJson(req);
      const selectors = unixSelectors(peerOf(req.socket));
      const mine = this.entries.filter((e) => subsetOf(e.selectors, selectors));
      const wanted = body.spiffeId ? mine.filter((e) => e.spiffeId === body.spiffeId) : mine;
      if (!wanted.length) {
        log("error", "No identity issued", {
          selectors: selectors.map((s) => `${s.type}:${s.value}`).join(","),
        });
        return reply(res, 403, { error: "no identity issued" });
      }
      const bundle = this.bundle.map((c) => c.toString()).join("");
      if (req.method === "POST" && req.url === "/x509") {
        const svids = [];
        for (const e of wanted) {
          const key = await newKeyPair();
          const { chain } = await this.call<{ chain: string }>(
            "POST",
            "/agent/svid",
            { entryId: e.id, csr: await makeCsr(key.keys) },
            true,
          );
          svids.push({ spiffeId: e.spiffeId, chain, key: key.privatePem });
        }
        return reply(res, 200, { svids, bundle, trustDomain: this.s.td });
      }
      if (req.method === "POST" && req.url === "/jwt") {
        const svids = [];
        for (const e of wanted) {
          const { token } = await this.call<{ token: string }>(
            "POST",
            "/agent/jwt",
            { entryId: e.id, audience: body.audience },
            true,
          );
          svids.push({ spiffeId: e.spiffeId, token });
        }
        return reply(res, 200, { svids, jwks: this.jwks, trustDomain: this.s.td });
      }
      reply(res, 404, { error: `no such API: ${req.method} ${req.url}` });
    } catch (e) {
      log("error", "Workload API call failed", { error: (e as Error).message });
      reply(res, 500, { error: (e as Error).message });
    }
  }

  private async listenHealth() {
    const h = this.s.health!;
    const srv = http.createServer((req, res) => {
      if (req.url === h.live) return reply(res, 200, { live: true });
      if (req.url === h.ready) return reply(res, this.healthy ? 200 : 503, { ready: this.healthy });
      reply(res, 404, { error: "not found" });
    });
    this.servers.push(srv);
    await new Promise<void>((done, fail) => {
      srv.once("error", (e) =>
        fail(new Error(`cannot listen on ${h.address}:${h.port}: ${e.message}`)),
      );
      srv.listen(h.port, h.address, done);
    });
  }
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
