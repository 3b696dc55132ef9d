// `bao server -config=F`: the HTTP API on the configured listeners with the configured TLS
// files, state in the raft path (see state.ts), sealed at every start.
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { log } from "../common/cli.js";
import type { Listener, ServerConfig } from "./config.js";
import { BadRequest, login, unknownFields, writeConfig, writeRole } from "./jwt.js";
import { allowed, DEFAULT_POLICY, parsePolicy } from "./policy.js";
import { Store, tokenId, type Data, type TokenEntry } from "./state.js";

export const VERSION = "2.5.0";
const BUILD_DATE = "2025-01-01T00:00:00Z";

class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Ctx {
  method: string;
  path: string;
  query: URLSearchParams;
  body: Record<string, unknown>;
  token?: TokenEntry;
  tokenString?: string;
}

type Reply = { status: number; body?: unknown };

export class BaoServer {
  private store: Store;
  private activeSince = new Date();

  constructor(private config: ServerConfig) {
    this.store = new Store(config.storagePath);
  }

  private sealStatus() {
    const s = this.store;
    return {
      type: "shamir",
      initialized: s.initialized,
      sealed: s.sealed,
      t: s.threshold,
      n: s.shares,
      progress: 0,
      nonce: "",
      version: VERSION,
      build_date: BUILD_DATE,
      migration: false,
      cluster_name: s.sealed ? "" : this.config.clusterName,
      cluster_id: s.sealed ? "" : s.clusterId,
      recovery_seal: false,
      storage_type: "raft",
    };
  }

  private health(q: URLSearchParams): Reply {
    const code = (name: string, dflt: number) => {
      const v = q.get(name);
      return v && /^\d{3}$/.test(v) ? Number(v) : dflt;
    };
    const s = this.store;
    const status = !s.initialized
      ? code("uninitcode", 501)
      : s.sealed
        ? code("sealedcode", 503)
        : code("activecode", 200);
    return {
      status,
      body: {
        initialized: s.initialized,
        sealed: s.sealed,
        standby: false,
        performance_standby: false,
        replication_performance_mode: "disabled",
        replication_dr_mode: "disabled",
        server_time_utc: Math.floor(Date.now() / 1000),
        version: VERSION,
        cluster_name: s.sealed ? undefined : this.config.clusterName,
        cluster_id: s.sealed ? undefined : s.clusterId,
      },
    };
  }

  private data(): Data {
    if (!this.store.data) throw new ApiError(503, "Vault is sealed");
    return this.store.data;
  }

  /** The caller's token, or 403 permission denied. */
  private authorize(ctx: Ctx, capability: string, sudo = false) {
    const d = this.data();
    const entry = ctx.tokenString ? d.tokens[tokenId(ctx.tokenString)] : undefined;
    if (!entry || (entry.expires && entry.expires < Date.now()))
      throw new ApiError(403, "permission denied");
    ctx.token = entry;
    if (entry.policies.includes("root")) return;
    const rules = entry.policies.flatMap((p) =>
      p === "default"
        ? parsePolicy(DEFAULT_POLICY)
        : d.policies[p]
          ? parsePolicy(d.policies[p]!)
          : [],
    );
    if (!allowed(rules, ctx.path, capability) || (sudo && !allowed(rules, ctx.path, "sudo")))
      throw new ApiError(403, "permission denied");
  }

  private ok(data: unknown, extra: Record<string, unknown> = {}): Reply {
    return {
      status: 200,
      body: {
        request_id: randomUUID(),
        lease_id: "",
        renewable: false,
        lease_duration: 0,
        data,
        wrap_info: null,
        warnings: null,
        auth: null,
        ...extra,
      },
    };
  }

  private async route(ctx: Ctx): Promise<Reply> {
    const { method, path } = ctx;
    const write = method === "PUT" || method === "POST";
    const cap =
      method === "GET"
        ? "read"
        : method === "DELETE"
          ? "delete"
          : method === "LIST"
            ? "list"
            : "update";
    if (path === "sys/health" && (method === "GET" || method === "HEAD"))
      return this.health(ctx.query);
    if (path === "sys/seal-status" && method === "GET")
      return { status: 200, body: this.sealStatus() };
    if (path === "sys/init" && method === "GET")
      return { status: 200, body: { initialized: this.store.initialized } };
    if (path === "sys/init" && write) return this.init(ctx.body);
    if (path === "sys/unseal" && write) return this.unseal(ctx.body);
    if (path === "sys/seal" && write) {
      this.authorize(ctx, "update", true);
      this.store.seal();
      log("info", "core: vault is sealed");
      return { status: 204 };
    }
    const loginMatch = /^auth\/([^/]+)\/login$/.exec(path);
    if (loginMatch && write) return this.login(loginMatch[1]! + "/", ctx.body);

    this.authorize(ctx, cap, path.startsWith("sys/auth"));
    const d = this.data();
    if (path === "sys/auth" && method === "GET") {
      const mounts = Object.fromEntries(
        Object.entries(d.auth).map(([p, m]) => [p, this.mountInfo(m)]),
      );
      return this.ok(mounts, mounts);
    }
    const authMount = /^sys\/auth\/(.+?)\/?$/.exec(path);
    if (authMount && write) return this.enableAuth(authMount[1]! + "/", ctx.body);
    const policy = /^sys\/polic(?:ies\/acl|y)\/([^/]+)$/.exec(path);
    if (policy) return this.policy(method, policy[1]!, ctx.body);
    if (
      (path === "sys/policies/acl" || path === "sys/policy") &&
      (method === "LIST" || method === "GET")
    )
      return this.ok({
        keys: ["default", ...Object.keys(d.policies)].sort(),
        policies: ["default", "root", ...Object.keys(d.policies)].sort(),
      });
    if (path === "auth/token/lookup-self" && method === "GET") return this.lookupSelf(ctx);
    const jwt = /^auth\/([^/]+)\/(config|role\/[^/]+|role)$/.exec(path);
    if (jwt) return this.jwtPath(jwt[1]! + "/", jwt[2]!, method, ctx.body);
    throw new ApiError(404, `no handler for route "${path}". route entry not found.`);
  }

  private init(body: Record<string, unknown>): Reply {
    if (this.store.initialized) throw new ApiError(400, "Vault is already initialized");
    const shares = Number(body.secret_shares ?? 5);
    const threshold = Number(body.secret_threshold ?? 3);
    if (!Number.isInteger(shares) || shares < 1)
      throw new ApiError(400, "invalid seal configuration: share count must be at least one");
    if (threshold !== 1)
      throw new ApiError(
        400,
        "this lab stand-in supports secret_threshold = 1 only (every unseal key alone unseals)",
      );
    if (threshold > shares)
      throw new ApiError(
        400,
        "invalid seal configuration: threshold cannot be larger than share count",
      );
    const { keys, rootToken } = this.store.init(shares, threshold);
    log("info", "core: security barrier initialized", { stored: 1, shares, threshold });
    return {
      status: 200,
      body: {
        keys: keys.map((k) => k.toString("hex")),
        keys_base64: keys.map((k) => k.toString("base64")),
        root_token: rootToken,
      },
    };
  }

  private unseal(body: Record<string, unknown>): Reply {
    if (!this.store.initialized) throw new ApiError(400, "Vault is not initialized");
    if (body.reset === true) return { status: 200, body: this.sealStatus() };
    const text = typeof body.key === "string" ? body.key.trim() : "";
    if (!text)
      throw new ApiError(
        400,
        "'key' must be specified in request body as JSON, or 'reset' set to true",
      );
    const key = /^[0-9a-fA-F]{64}$/.test(text)
      ? Buffer.from(text, "hex")
      : Buffer.from(text, "base64");
    if (key.length !== 32) throw new ApiError(400, "'key' must be a valid hex or base64 string");
    if (this.store.sealed) {
      if (!this.store.unseal(key))
        throw new ApiError(400, "Error unsealing: cipher: message authentication failed");
      this.activeSince = new Date();
      log("info", "core: vault is unsealed");
    }
    return { status: 200, body: this.sealStatus() };
  }

  private mountInfo(m: Data["auth"][string]) {
    return {
      type: m.type,
      description: m.description,
      accessor: m.accessor,
      uuid: m.uuid,
      local: false,
      seal_wrap: false,
      external_entropy_access: false,
      options: null,
      plugin_version: "",
      running_plugin_version: `v${VERSION}+builtin.bao`,
      running_sha256: "",
      config: {
        default_lease_ttl: 0,
        max_lease_ttl: 0,
        force_no_cache: false,
        token_type: "default-service",
      },
    };
  }

  private enableAuth(path: string, body: Record<string, unknown>): Reply {
    const d = this.data();
    const type = String(body.type ?? "");
    if (!type) throw new ApiError(400, "backend type must be specified as a string");
    if (type !== "jwt")
      throw new ApiError(
        400,
        `plugin not found in the catalog: ${type} (this lab stand-in has jwt only)`,
      );
    if (d.auth[path]) throw new ApiError(400, `path is already in use at ${path}`);
    d.auth[path] = {
      type,
      description: String(body.description ?? ""),
      accessor: `auth_${type}_${randomBytes(4).toString("hex")}`,
      uuid: randomUUID(),
      jwt: { roles: {} },
    };
    this.store.save();
    log("info", "core: enabled credential backend", { path, type });
    return { status: 204 };
  }

  private policy(method: string, name: string, body: Record<string, unknown>): Reply {
    const d = this.data();
    if (method === "GET") {
      const text = name === "default" ? DEFAULT_POLICY : d.policies[name];
      if (text === undefined) throw new ApiError(404, "");
      return this.ok({ name, policy: text, rules: text });
    }
    if (method === "DELETE") {
      Reflect.deleteProperty(d.policies, name);
      this.store.save();
      return { status: 204 };
    }
    if (name === "root") throw new ApiError(400, 'cannot update "root" policy');
    const text = body.policy ?? body.rules;
    if (typeof text !== "string" || !text.trim())
      throw new ApiError(400, "'policy' parameter not supplied or empty");
    try {
      parsePolicy(text);
    } catch (e) {
      throw new ApiError(400, (e as Error).message);
    }
    d.policies[name] = text;
    this.store.save();
    return { status: 204 };
  }

  private lookupSelf(ctx: Ctx): Reply {
    const t = ctx.token!;
    return this.ok({
      accessor: t.accessor,
      policies: t.policies,
      display_name: t.displayName,
      creation_time: Math.floor(t.created / 1000),
      creation_ttl: t.ttl,
      ttl: t.expires ? Math.max(0, Math.round((t.expires - Date.now()) / 1000)) : 0,
      expire_time: t.expires ? new Date(t.expires).toISOString() : null,
      meta: t.meta,
      orphan: true,
      type: "service",
    });
  }

  private jwtMount(path: string) {
    const m = this.data().auth[path];
    if (!m?.jwt)
      throw new ApiError(404, `no handler for route "auth/${path}". route entry not found.`);
    return m.jwt;
  }

  private async jwtPath(
    mount: string,
    sub: string,
    method: string,
    body: Record<string, unknown>,
  ): Promise<Reply> {
    const m = this.jwtMount(mount);
    const write = method === "PUT" || method === "POST";
    try {
      if (sub === "config") {
        if (method === "GET")
          return m.config ? this.ok(m.config) : { status: 404, body: { errors: [] } };
        if (!write) throw new ApiError(405, "unsupported operation");
        const warnings = unknownFields(body, "config");
        m.config = await writeConfig(body);
        this.store.save();
        return warnings.length
          ? this.ok(null, {
              warnings: [`Endpoint ignored these unrecognized parameters: [${warnings.join(" ")}]`],
            })
          : { status: 204 };
      }
      if (sub === "role") {
        if (method !== "LIST" && method !== "GET") throw new ApiError(405, "unsupported operation");
        return this.ok({ keys: Object.keys(m.roles).sort() });
      }
      const name = sub.slice("role/".length);
      if (method === "GET") {
        const role = m.roles[name];
        return role ? this.ok(role) : { status: 404, body: { errors: [] } };
      }
      if (method === "DELETE") {
        Reflect.deleteProperty(m.roles, name);
        this.store.save();
        return { status: 204 };
      }
      const warnings = unknownFields(body, "role");
      m.roles[name] = writeRole(m.roles[name], body);
      this.store.save();
      return warnings.length
        ? this.ok(null, {
            warnings: [`Endpoint ignored these unrecognized parameters: [${warnings.join(" ")}]`],
          })
        : { status: 204 };
    } catch (e) {
      if (e instanceof BadRequest) throw new ApiError(400, e.message);
      throw e;
    }
  }

  private async login(mount: string, body: Record<string, unknown>): Promise<Reply> {
    const d = this.data();
    const m = this.jwtMount(mount);
    let result;
    try {
      result = await login(m.config, m.roles, body);
    } catch (e) {
      if (e instanceof BadRequest) throw new ApiError(400, e.message);
      throw e;
    }
    const token = `s.${randomBytes(18).toString("base64url")}`;
    const entry: TokenEntry = {
      policies: result.policies,
      displayName: result.displayName,
      created: Date.now(),
      expires: Date.now() + result.ttl * 1000,
      ttl: result.ttl,
      accessor: randomBytes(12).toString("base64url"),
      meta: result.metadata,
    };
    for (const [id, t] of Object.entries(d.tokens))
      if (t.expires && t.expires < Date.now()) Reflect.deleteProperty(d.tokens, id);
    d.tokens[tokenId(token)] = entry;
    this.store.save();
    log("info", "auth: login", { mount, role: result.metadata.role, policies: result.policies });
    return this.ok(null, {
      auth: {
        client_token: token,
        accessor: entry.accessor,
        policies: result.policies,
        token_policies: result.policies,
        identity_policies: null,
        metadata: result.metadata,
        lease_duration: result.ttl,
        renewable: true,
        entity_id: randomUUID(),
        token_type: "service",
        orphan: true,
        mfa_requirement: null,
        num_uses: 0,
      },
    });
  }

  async handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "https://bao");
    const send = (r: Reply) => {
      if (r.body === undefined) {
        res.writeHead(r.status);
        res.end();
        return;
      }
      res.writeHead(r.status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : JSON.stringify(r.body) + "\n");
    };
    try {
      if (!url.pathname.startsWith("/v1/")) throw new ApiError(404, "");
      let text = "";
      for await (const chunk of req) {
        text += String(chunk);
        if (text.length > 32 << 20) throw new ApiError(413, "request body too large");
      }
      let body: Record<string, unknown> = {};
      if (text.trim()) {
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          throw new ApiError(400, "failed to parse JSON input: invalid character");
        }
      }
      const method =
        req.method === "GET" && url.searchParams.get("list") === "true"
          ? "LIST"
          : (req.method ?? "GET");
      const tokenHeader = req.headers["x-vault-token"];
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
      send(
        await this.route({
          method,
          path: url.pathname.slice(4).replace(/\/$/, ""),
          query: url.searchParams,
          body,
          tokenString: (Array.isArray(tokenHeader) ? tokenHeader[0] : tokenHeader) ?? bearer,
        }),
      );
    } catch (e) {
      if (e instanceof ApiError)
        send({ status: e.status, body: { errors: e.message ? [e.message] : [] } });
      else {
        log("error", `internal error: ${String((e as Error).stack ?? e)}`);
        send({ status: 500, body: { errors: ["1 error occurred:\n\t* internal error\n\n"] } });
      }
    }
  }

  private tlsOptions(l: Listener) {
    return {
      cert: readFileSync(l.certFile!),
      key: readFileSync(l.keyFile!),
      minVersion: l.minVersion,
    };
  }

  /** Starts every listener; resolves once all listen. */
  async start(): Promise<void> {
    const servers: { l: Listener; s: https.Server | http.Server }[] = [];
    for (const l of this.config.listeners) {
      const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
      let s: https.Server | http.Server;
      try {
        s = l.tlsDisable
          ? http.createServer(handler)
          : https.createServer(this.tlsOptions(l), handler);
      } catch (e) {
        throw new Error(
          `Error initializing listener of type tcp: error loading TLS cert: ${(e as Error).message}`,
        );
      }
      servers.push({ l, s });
    }
    process.on("SIGHUP", () => {
      for (const { l, s } of servers)
        if (s instanceof https.Server) {
          try {
            s.setSecureContext(this.tlsOptions(l));
            log("info", "core: reloaded TLS certificate", { address: l.address });
          } catch (e) {
            log("error", `reloading TLS certificate failed: ${(e as Error).message}`);
          }
        }
    });
    await Promise.all(
      servers.map(
        ({ l, s }) =>
          new Promise<void>((resolve, reject) => {
            s.once("error", (e) =>
              reject(new Error(`Error initializing listener of type tcp: ${e.message}`)),
            );
            const m = /^(.*):(\d+)$/.exec(l.address)!;
            const host = m[1]!.replace(/^\[(.*)\]$/, "$1");
            s.listen(Number(m[2]), host || undefined, () => resolve());
          }),
      ),
    );
    for (const sig of ["SIGINT", "SIGTERM"] as const)
      process.on(sig, () => {
        log("info", "==> OpenBao shutdown triggered");
        process.exit(0);
      });
    log(
      "info",
      `==> OpenBao server started! (lab stand-in ${VERSION}, storage raft at ${this.config.storagePath})`,
    );
    log(
      "info",
      `core: ${this.store.initialized ? "vault is sealed" : "security barrier not initialized"}`,
    );
    void this.activeSince;
  }
}
