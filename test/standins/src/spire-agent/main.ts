// spire-agent (lab stand-in): the subset of SPIRE 1.14.1's agent CLI the roles use.
import { X509Certificate } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  all,
  callSocket,
  fail,
  flag,
  log,
  need,
  parseKnownFlags,
  type Flags,
} from "../common/cli.js";
import { writeFileAtomic } from "../common/files.js";

const DEFAULT_SOCKET = "/tmp/spire-agent/public/api.sock";
const USAGE = `Usage: spire-agent [--version] [--help] <command> [<args>]

Available commands are:
    api fetch jwt|x509
    healthcheck
    run
    validate
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, sub, kind, ...rest] = argv;
  switch (cmd) {
    case "run":
      return run(argv.slice(1));
    case "validate":
      return validate(argv.slice(1));
    case "healthcheck":
      return healthcheck(argv.slice(1));
    case "api":
      if (sub === "fetch" && kind === "x509") return fetchX509(rest);
      if (sub === "fetch" && kind === "jwt") return fetchJwt(rest);
      break;
    case "--version":
    case "-version":
      process.stdout.write("1.14.1\n");
      return 0;
  }
  process.stderr.write(USAGE);
  return 127;
}

// The daemon and the config parser load only when needed: the API commands start faster.
async function config(f: Flags) {
  const { loadAgentConfig, loadOrFail } = await import("../spire/config.js");
  return loadOrFail(need(f, "config"), loadAgentConfig);
}

async function run(argv: string[]): Promise<number> {
  const f = parseKnownFlags(
    argv,
    ["config", "joinToken", "joinTokenFile", "logLevel", "serverAddress", "serverPort"],
    ["expandEnv"],
  );
  const c = await config(f);
  const { Agent, agentSettings } = await import("./agent.js");
  let agent: InstanceType<typeof Agent>;
  try {
    agent = new Agent(
      agentSettings(c, {
        joinToken: flag(f, "joinToken"),
        joinTokenFile: flag(f, "joinTokenFile"),
      }),
    );
    await agent.start();
  } catch (e) {
    log("error", "Agent crashed", { error: (e as Error).message });
    return 1;
  }
  await new Promise<void>((done) => {
    const stop = (sig: string) => {
      log("info", `Received ${sig}, shutting down`);
      void agent.stop().then(done);
    };
    process.once("SIGTERM", () => stop("terminated"));
    process.once("SIGINT", () => stop("interrupt"));
  });
  log("info", "Agent stopped gracefully");
  return 0;
}

async function validate(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["config"], ["expandEnv"]);
  const c = await config(f);
  const { agentSettings } = await import("./agent.js");
  agentSettings(c, {});
  process.stdout.write("SPIRE agent configuration file is valid.\n");
  return 0;
}

async function healthcheck(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["socketPath"], ["shallow", "verbose"]);
  const socket = flag(f, "socketPath", DEFAULT_SOCKET)!;
  try {
    const res = await callSocket(socket, "/health");
    if (res.status === 200 && res.data.healthy === true) {
      process.stdout.write("Agent is healthy.\n");
      return 0;
    }
    if (flag(f, "verbose")) process.stderr.write(`Agent state: ${JSON.stringify(res.data)}\n`);
  } catch (e) {
    if (flag(f, "verbose"))
      process.stderr.write(`Failed to check health: ${(e as Error).message}\n`);
  }
  process.stderr.write("Agent is unhealthy: unable to determine health\n");
  return 1;
}

async function workloadCall(f: Flags, path: string, body: unknown) {
  const socket = flag(f, "socketPath", DEFAULT_SOCKET)!;
  let res;
  try {
    res = await callSocket(socket, path, body, { "Content-Type": "application/json" });
  } catch (e) {
    fail(
      `rpc error: code = Unavailable desc = connection error: dial unix ${socket}: ${(e as Error).message}`,
      1,
    );
  }
  if (res.status === 403) fail("rpc error: code = PermissionDenied desc = no identity issued", 1);
  if (res.status !== 200) fail(`rpc error: code = Internal desc = ${String(res.data.error)}`, 1);
  return res.data;
}

function goTime(iso: string): string {
  return new Date(iso)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, " +0000 UTC");
}

async function fetchX509(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["socketPath", "write", "timeout", "output"], ["silent"]);
  const started = process.hrtime.bigint();
  const res = await workloadCall(f, "/x509", {});
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const svids = res.svids as { spiffeId: string; chain: string; key: string }[];
  const bundle = String(res.bundle);
  if (flag(f, "output") === "json") {
    process.stdout.write(
      JSON.stringify({
        svids: svids.map((s) => ({ spiffe_id: s.spiffeId, x509_svid: s.chain, bundle })),
      }) + "\n",
    );
    return 0;
  }
  const out: string[] = [`Received ${svids.length} svid after ${ms.toFixed(3)}ms`, ""];
  for (const s of svids) {
    const leaf = new X509Certificate(s.chain);
    out.push(
      `SPIFFE ID:\t\t${s.spiffeId}`,
      `SVID Valid After:\t${goTime(leaf.validFrom)}`,
      `SVID Valid Until:\t${goTime(leaf.validTo)}`,
    );
    bundle
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)
      ?.forEach((pem, i) => {
        const ca = new X509Certificate(pem);
        out.push(
          `CA #${i + 1} Valid After:\t${goTime(ca.validFrom)}`,
          `CA #${i + 1} Valid Until:\t${goTime(ca.validTo)}`,
        );
      });
    out.push("");
  }
  const dir = flag(f, "write");
  if (dir) {
    mkdirSync(dir, { recursive: true });
    svids.forEach((s, i) => {
      const files = {
        [`svid.${i}.pem`]: s.chain,
        [`svid.${i}.key`]: s.key,
        [`bundle.${i}.pem`]: bundle,
      };
      for (const [name, content] of Object.entries(files)) {
        writeFileAtomic(join(dir, name), content, name.endsWith(".key") ? 0o600 : 0o644);
        out.push(
          `Writing ${name.startsWith("bundle") ? "bundle" : name.endsWith(".key") ? "key" : "SVID"} #${i} to file ${join(dir, name)}.`,
        );
      }
    });
  }
  if (!flag(f, "silent")) process.stdout.write(out.join("\n") + "\n");
  return 0;
}

async function fetchJwt(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["socketPath", "audience", "spiffeID", "timeout", "output"]);
  const audience = all(f, "audience").flatMap((a) => a.split(","));
  if (!audience.length) fail("audience must be specified", 1);
  const res = await workloadCall(f, "/jwt", { audience, spiffeId: flag(f, "spiffeID") });
  const svids = res.svids as { spiffeId: string; token: string }[];
  const td = String(res.trustDomain);
  if (flag(f, "output") === "json") {
    process.stdout.write(
      JSON.stringify([
        { svids: svids.map((s) => ({ hint: "", spiffe_id: s.spiffeId, svid: s.token })) },
        {
          bundles: { [`spiffe://${td}`]: Buffer.from(JSON.stringify(res.jwks)).toString("base64") },
        },
      ]) + "\n",
    );
    return 0;
  }
  const out: string[] = [];
  for (const s of svids) out.push(`token(${s.spiffeId}):`, `\t${s.token}`, "");
  out.push(
    `bundle(spiffe://${td}):`,
    `\t${JSON.stringify(res.jwks, null, 4).replace(/\n/g, "\n\t")}`,
    "",
  );
  process.stdout.write(out.join("\n") + "\n");
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`Error: ${e.message}\n`);
    process.exit(1);
  },
);
