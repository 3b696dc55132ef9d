// OpenBao 2.5 server configuration (HCL v1), decoded strictly: unknown keys and blocks fail.
import { existsSync, readFileSync, statSync } from "node:fs";
import {
  B,
  block,
  ConfigError,
  decodeBody,
  I,
  parseHcl,
  S,
  type BlockSchema,
  type Labelled,
} from "../common/hcl.js";

const retryJoin: BlockSchema = {
  ...block({
    leader_api_addr: S,
    leader_ca_cert_file: S,
    leader_client_cert_file: S,
    leader_client_key_file: S,
    leader_tls_servername: S,
    auto_join: S,
    auto_join_scheme: S,
    auto_join_port: I,
  }),
  multiple: true,
};

const raft = block(
  {
    path: S,
    node_id: S,
    retry_join: retryJoin,
    performance_multiplier: I,
    trailing_logs: I,
    snapshot_threshold: I,
    snapshot_interval: S,
    max_entry_size: I,
    autopilot_reconcile_interval: S,
    autopilot_update_interval: S,
  },
  ["path"],
);

const tcp = block({
  address: S,
  cluster_address: S,
  tls_disable: B,
  tls_cert_file: S,
  tls_key_file: S,
  tls_min_version: S,
  tls_max_version: S,
  tls_cipher_suites: S,
  tls_client_ca_file: S,
  tls_require_and_verify_client_cert: B,
  tls_disable_client_certs: B,
  max_request_size: I,
  max_request_duration: S,
  proxy_protocol_behavior: S,
  proxy_protocol_authorized_addrs: S,
  x_forwarded_for_authorized_addrs: S,
  x_forwarded_for_reject_not_authorized: B,
  x_forwarded_for_reject_not_present: B,
});

const SCHEMA: BlockSchema = block(
  {
    storage: { kind: "block", fields: {}, byLabel: { raft } },
    listener: { kind: "block", fields: {}, byLabel: { tcp }, multiple: true },
    api_addr: S,
    cluster_addr: S,
    cluster_name: S,
    ui: B,
    log_level: S,
    log_format: S,
    log_file: S,
    plugin_directory: S,
    default_lease_ttl: S,
    max_lease_ttl: S,
    default_max_request_duration: S,
    pid_file: S,
    disable_cache: B,
    telemetry: block({ disable_hostname: B, prometheus_retention_time: S, statsite_address: S }),
    // Auto-unseal (seal "transit" / "pkcs11" / ...) is not in this stand-in: Shamir only.
    seal: { kind: "block", fields: {}, byLabel: {} },
  },
  ["storage", "listener"],
);

export interface Listener {
  address: string;
  tlsDisable: boolean;
  certFile?: string;
  keyFile?: string;
  minVersion: "TLSv1.2" | "TLSv1.3";
}

export interface ServerConfig {
  storagePath: string;
  nodeId?: string;
  listeners: Listener[];
  apiAddr: string;
  clusterAddr: string;
  clusterName: string;
  logLevel: string;
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "warning", "error", "err"];
const TLS_VERSIONS: Record<string, Listener["minVersion"]> = { tls12: "TLSv1.2", tls13: "TLSv1.3" };

function url(value: unknown, key: string): string {
  if (typeof value !== "string") throw new ConfigError(`${key} must be set`);
  try {
    new URL(value);
  } catch {
    throw new ConfigError(`${key}: "${value}" is not a URL (like https://host:8200)`);
  }
  return value;
}

/** Reads, parses and checks a server config file; errors name the file. */
export function loadServerConfig(file: string): ServerConfig {
  try {
    return check(decodeBody(parseHcl(readFileSync(file, "utf8")), SCHEMA, ""));
  } catch (e) {
    if (e instanceof ConfigError)
      throw new ConfigError(`error loading configuration from ${file}: ${e.message}`);
    throw new ConfigError(`error loading configuration from ${file}: ${(e as Error).message}`);
  }
}

function check(c: Record<string, unknown>): ServerConfig {
  const storage = c.storage as Labelled;
  const body = storage.body;
  const storagePath = body.path as string;
  if (!existsSync(storagePath) || !statSync(storagePath).isDirectory())
    throw new ConfigError(
      `storage "raft": path ${storagePath} does not exist or is not a directory`,
    );
  // Raft needs both addresses (command/server.go).
  if (c.cluster_addr === undefined)
    throw new ConfigError(
      'Cluster address must be set when using raft storage (set "cluster_addr")',
    );
  if (c.api_addr === undefined) throw new ConfigError('storage "raft" needs "api_addr"');
  const level = (c.log_level as string | undefined) ?? "info";
  if (!LOG_LEVELS.includes(level.toLowerCase()))
    throw new ConfigError(`log_level: unknown level "${level}" (trace, debug, info, warn, error)`);
  const listeners = (c.listener as Labelled[]).map((l, i): Listener => {
    const b = l.body;
    const where = `listener "tcp" #${i + 1}`;
    const tlsDisable = (b.tls_disable as boolean | undefined) ?? false;
    if (!tlsDisable && (!b.tls_cert_file || !b.tls_key_file))
      throw new ConfigError(
        `${where}: tls_cert_file and tls_key_file are required unless tls_disable = true`,
      );
    const min = (b.tls_min_version as string | undefined) ?? "tls12";
    const minVersion = TLS_VERSIONS[min];
    if (!minVersion) throw new ConfigError(`${where}: tls_min_version "${min}" (tls12 or tls13)`);
    const address = (b.address as string | undefined) ?? "127.0.0.1:8200";
    if (!/^(\[[0-9a-fA-F:]+\]|[^:\s]*):\d+$/.test(address))
      throw new ConfigError(`${where}: address "${address}" is not host:port`);
    return {
      address,
      tlsDisable,
      certFile: b.tls_cert_file as string | undefined,
      keyFile: b.tls_key_file as string | undefined,
      minVersion,
    };
  });
  return {
    storagePath,
    nodeId: body.node_id as string | undefined,
    listeners,
    apiAddr: url(c.api_addr, "api_addr"),
    clusterAddr: url(c.cluster_addr, "cluster_addr"),
    clusterName: (c.cluster_name as string | undefined) ?? "",
    logLevel: level,
  };
}
