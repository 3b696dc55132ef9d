import type { InventoryHost } from "../inventory/load.js";
import { LocalConnection } from "../connection/local.js";
import { SshConnection } from "../connection/ssh.js";
import type { BecomeSettings, Connection } from "../connection/types.js";
import { Secret } from "../secret.js";

/** Opens the connection an inventory host asks for. */
export async function openConnection(
  host: InventoryHost,
  connect?: (host: InventoryHost) => Connection,
): Promise<Connection> {
  const connection = connect ? connect(host) : defaultConnection(host);
  await connection.open();
  return connection;
}

function defaultConnection(host: InventoryHost): Connection {
  const spec = host.connection;
  const become = becomeSettings(host);
  if (spec.kind === "local") return new LocalConnection(host.name, become, spec.become);
  return new SshConnection({
    host: host.name,
    address: spec.address,
    port: spec.port,
    user: spec.user,
    ...(spec.key ? { privateKeyPath: spec.key } : {}),
    useAgent: spec.agent || !spec.key,
    knownHostsPath: spec.knownHosts,
    knownHostsAliases: spec.address === host.name ? [] : [host.name],
    connectTimeoutMs: spec.connectTimeoutMs,
    ...(become ? { become } : {}),
    becomeByDefault: spec.become,
  });
}

function becomeSettings(host: InventoryHost): BecomeSettings {
  const env = host.connection.becomePasswordEnv;
  const password =
    env && process.env[env] ? new Secret(process.env[env] as string, `env:${env}`) : undefined;
  return { user: host.connection.becomeUser, ...(password ? { password } : {}) };
}
