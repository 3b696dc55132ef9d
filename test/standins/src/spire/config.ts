// server.conf and agent.conf schemas of SPIRE 1.14.1, decoded strictly (unknown keys fail).
import { fail } from "../common/cli.js";
import { readFileSync } from "node:fs";
import {
  B,
  block,
  ConfigError,
  D,
  decodeBody,
  I,
  L,
  lineOf,
  parseHcl,
  S,
  type BlockSchema,
  type Labelled,
} from "../common/hcl.js";

/** A plugin block's body schema for given plugin_data fields. */
function plugin(data: BlockSchema): BlockSchema {
  return block({
    plugin_data: data,
    plugin_data_file: S,
    enabled: B,
    plugin_cmd: S,
    plugin_checksum: S,
  });
}

function pluginType(byLabel: Record<string, BlockSchema>, multiple = true): BlockSchema {
  return { kind: "block", fields: {}, multiple, byLabel };
}

const healthChecks = block({
  listener_enabled: B,
  bind_address: S,
  bind_port: I,
  live_path: S,
  ready_path: S,
});

const telemetry = block({
  Prometheus: block({ host: S, port: I }),
  AllowedLabels: L,
  BlockedLabels: L,
  AllowedPrefixes: L,
  BlockedPrefixes: L,
});

const bundleEndpoint = block({
  address: S,
  port: I,
  refresh_hint: D,
  profile: {
    kind: "block",
    fields: {},
    byLabel: {
      https_spiffe: block({}),
      https_web: block({
        acme: block({ domain_name: S, email: S, directory_url: S, tos_accepted: B }),
        serving_cert_file: block({ cert_file_path: S, key_file_path: S, file_sync_interval: D }, [
          "cert_file_path",
          "key_file_path",
        ]),
      }),
    },
  },
});

const serverSchema = block(
  {
    server: block(
      {
        trust_domain: S,
        bind_address: S,
        bind_port: I,
        socket_path: S,
        data_dir: S,
        log_level: S,
        log_file: S,
        log_format: S,
        ca_ttl: D,
        ca_key_type: S,
        ca_subject: block({ country: L, organization: L, common_name: S }),
        default_x509_svid_ttl: D,
        default_jwt_svid_ttl: D,
        agent_ttl: D,
        jwt_issuer: S,
        jwt_key_type: S,
        admin_ids: L,
        audit_log_enabled: B,
        prune_attested_nodes_expired_for: D,
        federation: block({ bundle_endpoint: bundleEndpoint }),
      },
      ["trust_domain", "data_dir"],
    ),
    plugins: block(
      {
        DataStore: pluginType(
          {
            sql: plugin(
              block(
                {
                  database_type: S,
                  connection_string: S,
                  ro_connection_string: S,
                  max_open_conns: I,
                  max_idle_conns: I,
                  conn_max_lifetime: D,
                  disable_migration: B,
                },
                ["database_type", "connection_string"],
              ),
            ),
          },
          false,
        ),
        KeyManager: pluginType(
          { disk: plugin(block({ keys_path: S }, ["keys_path"])), memory: plugin(block({})) },
          false,
        ),
        NodeAttestor: pluginType({
          join_token: plugin(block({})),
          tpm_devid: plugin(
            block({ devid_ca_path: S, endorsement_ca_path: S }, [
              "devid_ca_path",
              "endorsement_ca_path",
            ]),
          ),
        }),
      },
      ["DataStore", "KeyManager"],
    ),
    health_checks: healthChecks,
    telemetry,
  },
  ["server", "plugins"],
);

const agentSchema = block(
  {
    agent: block(
      {
        trust_domain: S,
        server_address: S,
        server_port: I,
        data_dir: S,
        socket_path: S,
        admin_socket_path: S,
        log_level: S,
        log_file: S,
        log_format: S,
        trust_bundle_path: S,
        trust_bundle_url: S,
        trust_bundle_unix_socket: S,
        trust_bundle_format: S,
        insecure_bootstrap: B,
        join_token: S,
        join_token_file: S,
        rebootstrap_mode: S,
        rebootstrap_delay: D,
        workload_x509_svid_key_type: S,
        availability_target: D,
        sds: block({}),
      },
      ["trust_domain", "server_address"],
    ),
    plugins: block(
      {
        NodeAttestor: pluginType({
          join_token: plugin(block({})),
          tpm_devid: plugin(
            block(
              {
                devid_cert_path: S,
                devid_priv_path: S,
                devid_pub_path: S,
                tpm_device_path: S,
                devid_password: S,
                owner_hierarchy_password: S,
                endorsement_hierarchy_password: S,
              },
              ["devid_cert_path", "devid_priv_path", "devid_pub_path"],
            ),
          ),
        }),
        KeyManager: pluginType(
          { disk: plugin(block({ directory: S }, ["directory"])), memory: plugin(block({})) },
          false,
        ),
        WorkloadAttestor: pluginType({ unix: plugin(block({ discover_workload_path: B })) }),
      },
      ["NodeAttestor", "KeyManager"],
    ),
    health_checks: healthChecks,
    telemetry,
  },
  ["agent", "plugins"],
);

/** One configured plugin: its name and its decoded plugin_data. */
export interface PluginConf {
  name: string;
  data: Record<string, unknown>;
}

type Conf = Record<string, Record<string, unknown>>;

/** Loads and strictly decodes a config file, then runs `check`; errors name the file and line. */
function load<T>(path: string, schema: BlockSchema, check: (conf: Conf) => T): T {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`could not read config file ${path}: ${(e as Error).message}`);
  }
  try {
    return check(decodeBody(parseHcl(text), schema, "") as Conf);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const line = e.key === undefined ? undefined : lineOf(text, e.key);
    throw new ConfigError(`${path}${line === undefined ? "" : `:${line}`}: ${e.message}`, e.key);
  }
}

/** The plugins of one type, with plugin_data (or plugin_data_file) decoded for each. */
export function pluginsOf(conf: Conf, type: string, schema: BlockSchema) {
  const found = conf.plugins?.[type] as Labelled[] | Labelled | undefined;
  const blocks = found === undefined ? [] : Array.isArray(found) ? found : [found];
  return blocks
    .filter((b) => b.body.enabled !== false)
    .map((b): PluginConf => {
      if (b.body.plugin_cmd)
        throw new ConfigError(`${type} "${b.label}": external plugins are not supported`);
      const dataSchema = (schema.fields.plugins as BlockSchema).fields[type] as BlockSchema;
      const pluginSchema = dataSchema.byLabel![b.label]!.fields.plugin_data as BlockSchema;
      const where = `plugins.${type} "${b.label}".plugin_data`;
      const file = b.body.plugin_data_file as string | undefined;
      const raw = file ? parseHcl(readFileSync(file, "utf8")) : (b.body.plugin_data ?? {});
      return { name: b.label, data: decodeBody(raw, pluginSchema, where) };
    });
}

/** Exactly one plugin of a type, or a clear error. */
export function onePlugin(conf: Conf, type: string, schema: BlockSchema) {
  const found = pluginsOf(conf, type, schema);
  if (found.length !== 1)
    throw new ConfigError(`expected exactly one ${type} plugin, found ${found.length}`);
  return found[0]!;
}

/** Parsed, validated server.conf. */
export function loadServerConfig(path: string) {
  return load(path, serverSchema, checkServer);
}

function checkServer(conf: Conf) {
  const server = conf.server!;
  const td = server.trust_domain as string;
  if (!/^[a-z0-9._-]+$/.test(td))
    throw new ConfigError(`server.trust_domain: invalid "${td}"`, "trust_domain");
  for (const key of ["ca_key_type", "jwt_key_type"])
    if (server[key] !== undefined && server[key] !== "ec-p256")
      throw new ConfigError(
        `server.${key}: "${String(server[key])}" is not supported by this server (only ec-p256)`,
        key,
      );
  checkLogLevel(server, "server");
  const federation = server.federation as Record<string, Record<string, unknown>> | undefined;
  const endpoint = federation?.bundle_endpoint;
  if (endpoint) {
    const profile = endpoint.profile as Labelled | undefined;
    if (!profile)
      throw new ConfigError(
        'server.federation.bundle_endpoint: a profile is required ("https_spiffe" or "https_web")',
        "bundle_endpoint",
      );
    if (profile.label === "https_web" && !profile.body.serving_cert_file)
      throw new ConfigError(
        'server.federation.bundle_endpoint.profile "https_web": only serving_cert_file is supported by this server (acme needs the internet)',
        "profile",
      );
  }
  const ds = onePlugin(conf, "DataStore", serverSchema);
  if (ds.data.database_type !== "sqlite3")
    throw new ConfigError(`DataStore "sql": only database_type "sqlite3" is supported here`);
  const nodeAttestors = pluginsOf(conf, "NodeAttestor", serverSchema);
  return { conf, server, td, ds, km: onePlugin(conf, "KeyManager", serverSchema), nodeAttestors };
}

/** Parsed, validated agent.conf. */
export function loadAgentConfig(path: string) {
  return load(path, agentSchema, checkAgent);
}

function checkLogLevel(block: Record<string, unknown>, where: string) {
  const level = block.log_level;
  if (level !== undefined && !/^(debug|info|warn|error)$/i.test(String(level)))
    throw new ConfigError(
      `${where}.log_level: "${String(level)}" is not one of DEBUG, INFO, WARN, ERROR`,
      "log_level",
    );
}

function checkAgent(conf: Conf) {
  const agent = conf.agent!;
  checkLogLevel(agent, "agent");
  const bootstraps = ["trust_bundle_path", "trust_bundle_url", "insecure_bootstrap"].filter(
    (k) => agent[k] !== undefined && agent[k] !== false,
  );
  if (bootstraps.length !== 1)
    throw new ConfigError(
      `agent: exactly one of trust_bundle_path, trust_bundle_url, insecure_bootstrap is required (found ${bootstraps.join(", ") || "none"})`,
    );
  const na = onePlugin(conf, "NodeAttestor", agentSchema);
  const km = onePlugin(conf, "KeyManager", agentSchema);
  const wa = pluginsOf(conf, "WorkloadAttestor", agentSchema);
  return { conf, agent, td: agent.trust_domain as string, na, km, wa };
}

export type ServerConfig = ReturnType<typeof loadServerConfig>;
export type AgentConfig = ReturnType<typeof loadAgentConfig>;

/** Loads a config the way the CLI does: a config error ends the command with SPIRE's message. */
export function loadOrFail<T>(path: string, load: (path: string) => T): T {
  try {
    return load(path);
  } catch (e) {
    if (e instanceof ConfigError) fail(`could not parse configuration: ${e.message}`, 1);
    throw e;
  }
}
