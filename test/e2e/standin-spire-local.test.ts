// The SPIRE stand-ins on this machine (loopback only, no TPM, no lab host): registration entry
// commands and their JSON, token expiry, agent SVID renewal and eviction. Runs as root (the
// agent reads other users' /proc/<pid>/fd to identify Workload API callers).
import { build } from "esbuild";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, waitUntil } from "../helpers/lab.js";

const TD = "funlab.casa";
const dir = mkdtempSync(join(tmpdir(), "omens-spire-local-"));
const port = 20000 + Math.floor(Math.random() * 20000);
const serverSock = join(dir, "server.sock");
const S = ["-socketPath", serverSock];
const children: ChildProcess[] = [];

function bin(name: string, args: string[], user?: string) {
  const argv = user ? ["-u", user, "--", join(dir, name), ...args] : args;
  const r = spawnSync(user ? "runuser" : join(dir, name), argv, { encoding: "utf8" });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function server(args: string[]) {
  return bin("spire-server", [...args.slice(0, 2), ...S, ...args.slice(2)]);
}

function json<T>(args: string[]): T {
  const r = server([...args, "-output", "json"]);
  if (r.code !== 0) throw new Error(`spire-server ${args.join(" ")}: ${r.err}`);
  return JSON.parse(r.out) as T;
}

function daemon(name: string, args: string[]) {
  const child = spawn(join(dir, name), args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  children.push(child);
  return { child, log: () => log };
}

const until = <T>(what: string, probe: () => T | undefined, seconds = 30) =>
  waitUntil(what, probe, seconds, 250);

const serverConf = `server {
  trust_domain = "${TD}"
  bind_address = "127.0.0.1"
  bind_port = ${port}
  socket_path = "${serverSock}"
  data_dir = "${dir}/server"
  agent_ttl = "8s"
  jwt_issuer = "https://spire.funlab.casa"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${dir}/server/datastore.sqlite3"
    }
  }
  KeyManager "disk" {
    plugin_data {
      keys_path = "${dir}/server/keys.json"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`;

function agentConf(name: string) {
  return `agent {
  trust_domain = "${TD}"
  server_address = "127.0.0.1"
  server_port = ${port}
  socket_path = "${dir}/${name}/api.sock"
  data_dir = "${dir}/${name}"
  trust_bundle_path = "${dir}/bundle.pem"
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "disk" {
    plugin_data {
      directory = "${dir}/${name}"
    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`;
}

interface EntryJson {
  id: string;
  spiffe_id: { trust_domain: string; path: string };
  parent_id: { trust_domain: string; path: string };
  selectors: { type: string; value: string }[];
  revision_number: string;
  x509_svid_ttl: number;
  dns_names: string[];
}

describe("SPIRE stand-ins on this machine", () => {
  beforeAll(async () => {
    for (const name of ["spire-server", "spire-agent"])
      await build({
        entryPoints: [join(ROOT, `test/standins/src/${name}/main.ts`)],
        bundle: true,
        platform: "node",
        target: "node18",
        format: "cjs",
        banner: { js: "#!/usr/bin/env node" },
        outfile: join(dir, name),
        logLevel: "warning",
      });
    spawnSync("chmod", ["755", join(dir, "spire-server"), join(dir, "spire-agent"), dir]);
    writeFileSync(join(dir, "server.conf"), serverConf);
    daemon("spire-server", ["run", "-config", join(dir, "server.conf")]);
    await until("server health", () => (server(["healthcheck"]).code === 0 ? true : undefined));
    writeFileSync(join(dir, "bundle.pem"), server(["bundle", "show"]).out);
  });

  afterAll(() => {
    for (const c of children) c.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  });

  it("entry create/show/update/delete print the real CLI's JSON shapes", () => {
    const created = json<{ results: { status: { code: number }; entry: EntryJson }[] }>([
      "entry",
      "create",
      "-parentID",
      `spiffe://${TD}/host/a`,
      "-spiffeID",
      `spiffe://${TD}/workload/x`,
      "-selector",
      "unix:uid:999",
      "-x509SVIDTTL",
      "600",
      "-dns",
      "x.funlab.casa",
    ]);
    const entry = created.results[0]!.entry;
    expect(created.results[0]!.status.code).toBe(0);
    expect(entry).toMatchObject({
      spiffe_id: { trust_domain: TD, path: "/workload/x" },
      parent_id: { trust_domain: TD, path: "/host/a" },
      selectors: [{ type: "unix", value: "uid:999" }],
      x509_svid_ttl: 600,
      dns_names: ["x.funlab.casa"],
      revision_number: "0",
    });
    const again = server([
      "entry",
      "create",
      "-parentID",
      `spiffe://${TD}/host/a`,
      "-spiffeID",
      `spiffe://${TD}/workload/x`,
      "-selector",
      "unix:uid:999",
    ]);
    expect(again.code).toBe(1);
    expect(again.err).toContain("similar entry already exists");

    const shown = json<{ entries: EntryJson[]; next_page_token: string }>([
      "entry",
      "show",
      "-spiffeID",
      `spiffe://${TD}/workload/x`,
    ]);
    expect(shown.entries.map((e) => e.id)).toEqual([entry.id]);
    expect(shown.next_page_token).toBe("");

    json([
      "entry",
      "update",
      "-entryID",
      entry.id,
      "-parentID",
      `spiffe://${TD}/host/a`,
      "-spiffeID",
      `spiffe://${TD}/workload/x`,
      "-selector",
      "unix:uid:1000",
    ]);
    const updated = json<{ entries: EntryJson[] }>(["entry", "show", "-entryID", entry.id])
      .entries[0]!;
    expect(updated.selectors).toEqual([{ type: "unix", value: "uid:1000" }]);
    expect(updated.revision_number).toBe("1");

    expect(server(["entry", "delete", "-entryID", entry.id]).out).toBe(
      `Deleted entry with ID: ${entry.id}\n`,
    );
    expect(json<{ entries: EntryJson[] }>(["entry", "show"]).entries).toEqual([]);
    const missing = server(["entry", "show", "-entryID", entry.id]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("NotFound");
  });

  it("bundle show -format spiffe is the SPIFFE bundle of the PEM roots", () => {
    const bundle = JSON.parse(server(["bundle", "show", "-format", "spiffe"]).out) as {
      keys: { use: string; x5c?: string[] }[];
      spiffe_sequence: number;
    };
    const der = bundle.keys.find((k) => k.use === "x509-svid")!.x5c![0]!;
    const pem = readFileSync(join(dir, "bundle.pem"), "utf8");
    expect(pem.replace(/-----[A-Z ]+-----|\s/g, "")).toBe(der);
    expect(bundle.spiffe_sequence).toBeGreaterThan(0);
  });

  it("an expired token is refused like a spent one", async () => {
    const { value } = json<{ value: string }>(["token", "generate", "-ttl", "1"]);
    await new Promise((r) => setTimeout(r, 2100));
    writeFileSync(join(dir, "late.conf"), agentConf("late"));
    const r = bin("spire-agent", ["run", "-config", join(dir, "late.conf"), "-joinToken", value]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("join token does not exist or has already been used");
  });

  it("the agent renews its SVID after half its life, serves by user name, and goes unhealthy when evicted", async () => {
    const { value } = json<{ value: string }>([
      "token",
      "generate",
      "-spiffeID",
      `spiffe://${TD}/host/local`,
      "-ttl",
      "60",
    ]);
    json([
      "entry",
      "create",
      "-parentID",
      `spiffe://${TD}/host/local`,
      "-spiffeID",
      `spiffe://${TD}/workload/nobody`,
      "-selector",
      "unix:user:nobody",
    ]);
    writeFileSync(join(dir, "agent.conf"), agentConf("agent"));
    const agent = daemon("spire-agent", [
      "run",
      "-config",
      join(dir, "agent.conf"),
      "-joinToken",
      value,
    ]);
    const sock = ["-socketPath", join(dir, "agent", "api.sock")];
    await until("agent health", () =>
      bin("spire-agent", ["healthcheck", ...sock]).code === 0 ? true : undefined,
    );
    const agentId = `spiffe://${TD}/spire/agent/join_token/${value}`;
    const serial = () =>
      json<{ x509svid_serial_number: string }>(["agent", "show", "-spiffeID", agentId])
        .x509svid_serial_number;
    const first = serial();
    await until("a renewed agent SVID", () => (serial() !== first ? true : undefined), 20);
    // The log arrives through a pipe this process reads between probes.
    await until("the renewal in the agent's log", () =>
      agent.log().includes("Renewed agent SVID") ? true : undefined,
    );
    expect(agent.log().match(/Node attestation was successful/g)).toHaveLength(1);
    const cached = JSON.parse(readFileSync(join(dir, "agent", "agent-data.json"), "utf8")) as {
      svid: string;
    };
    expect(cached.svid).toContain("BEGIN CERTIFICATE");

    const fetched = await until("an SVID for nobody", () => {
      const r = bin("spire-agent", ["api", "fetch", "x509", ...sock], "nobody");
      return r.code === 0 ? r.out : undefined;
    });
    expect(fetched).toContain(`spiffe://${TD}/workload/nobody`);

    expect(server(["agent", "evict", "-spiffeID", agentId]).out).toBe(
      "Agent evicted successfully\n",
    );
    await until("the evicted agent to turn unhealthy", () =>
      bin("spire-agent", ["healthcheck", ...sock]).code === 1 ? true : undefined,
    );
    await until("the refusal in the agent's log", () =>
      agent.log().includes("is not attested or no longer valid") ? true : undefined,
    );
  });
});
