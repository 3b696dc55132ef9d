// spire-server (lab stand-in): the subset of SPIRE 1.14.1's server CLI the roles use.
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
import {
  agentJson,
  agentPretty,
  entryJson,
  entryPretty,
  parseSelector,
  selectorText,
  subsetOf,
  type AgentRecord,
  type EntryRecord,
} from "../spire/shared.js";

const DEFAULT_SOCKET = "/tmp/spire-server/private/api.sock";
const USAGE = `Usage: spire-server [--version] [--help] <command> [<args>]

Available commands are:
    agent evict|list|show
    bundle show
    entry create|delete|show|update
    healthcheck
    run
    token generate
    validate
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  switch (cmd) {
    case "run":
      return run(argv.slice(1));
    case "validate":
      return validate(argv.slice(1));
    case "healthcheck":
      return healthcheck(argv.slice(1));
    case "token":
      if (sub === "generate") return tokenGenerate(rest);
      break;
    case "entry":
      if (sub === "create" || sub === "update") return entryWrite(sub, rest);
      if (sub === "show") return entryShow(rest);
      if (sub === "delete") return entryDelete(rest);
      break;
    case "agent":
      if (sub === "list" || sub === "show" || sub === "evict") return agentCmd(sub, rest);
      break;
    case "bundle":
      if (sub === "show") return bundleShow(rest);
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
  const { loadServerConfig, loadOrFail } = await import("../spire/config.js");
  return loadOrFail(need(f, "config"), loadServerConfig);
}

async function run(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["config", "logLevel"], ["expandEnv"]);
  const c = await config(f);
  const { Server, serverSettings } = await import("./run.js");
  let server: InstanceType<typeof Server>;
  try {
    server = new Server(serverSettings(c));
    await server.start();
  } catch (e) {
    log("error", "Fatal run error", { error: (e as Error).message });
    return 1;
  }
  await new Promise<void>((done) => {
    const stop = (sig: string) => {
      log("info", `Received ${sig}, shutting down`);
      void server.stop().then(done);
    };
    process.once("SIGTERM", () => stop("terminated"));
    process.once("SIGINT", () => stop("interrupt"));
  });
  log("info", "Server stopped gracefully");
  return 0;
}

async function validate(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["config"], ["expandEnv"]);
  const c = await config(f);
  const { serverSettings } = await import("./run.js");
  try {
    serverSettings(c);
  } catch (e) {
    fail(`SPIRE server configuration file is invalid: ${(e as Error).message}`, 1);
  }
  process.stdout.write("SPIRE server configuration file is valid.\n");
  return 0;
}

/** Calls the server's CLI API; "Error: ..." and exit 1 when it fails, like the real CLI. */
async function api(f: Flags, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const socket = flag(f, "socketPath", DEFAULT_SOCKET)!;
  let res;
  try {
    res = await callSocket(
      socket,
      path,
      body,
      body === undefined ? {} : { "Content-Type": "application/json" },
    );
  } catch (e) {
    fail(
      `Error: connection error: desc = "transport: error while dialing: dial unix ${socket}: ${(e as Error).message}"`,
      1,
    );
  }
  if (res.status !== 200) {
    const code =
      {
        400: "InvalidArgument",
        401: "Unauthenticated",
        403: "PermissionDenied",
        404: "NotFound",
        409: "AlreadyExists",
      }[res.status] ?? "Internal";
    fail(`Error: rpc error: code = ${code} desc = ${String(res.data.error)}`, 1);
  }
  return res.data;
}

function output(f: Flags): "json" | "pretty" {
  const o = flag(f, "output", "pretty");
  if (o !== "json" && o !== "pretty")
    fail(`invalid value "${o}" for flag -output: unknown output format "${o}"`, 1);
  return o;
}

function print(value: unknown) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

async function healthcheck(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["socketPath"], ["shallow", "verbose"]);
  const socket = flag(f, "socketPath", DEFAULT_SOCKET)!;
  try {
    const res = await callSocket(socket, "/health");
    if (res.status === 200 && res.data.healthy === true) {
      process.stdout.write("Server is healthy.\n");
      return 0;
    }
  } catch (e) {
    if (flag(f, "verbose"))
      process.stderr.write(`Failed to check health: ${(e as Error).message}\n`);
  }
  process.stderr.write("Server is unhealthy: unable to determine health\n");
  return 1;
}

async function tokenGenerate(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["socketPath", "spiffeID", "ttl", "output"]);
  const fmt = output(f);
  const ttl = Number(flag(f, "ttl", "600"));
  const spiffeId = flag(f, "spiffeID");
  const res = await api(f, "/token", { ttl, spiffeId });
  if (fmt === "json") print(res);
  else {
    process.stdout.write(`Token: ${String(res.value)}\n`);
    if (!spiffeId) process.stdout.write("Warning: Missing SPIFFE ID.\n");
  }
  return 0;
}

const ENTRY_FLAGS = [
  "socketPath",
  "entryID",
  "parentID",
  "spiffeID",
  "selector",
  "x509SVIDTTL",
  "jwtSVIDTTL",
  "dns",
  "output",
  "hint",
];

async function entryWrite(verb: "create" | "update", argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ENTRY_FLAGS, ["node", "admin", "downstream"]);
  const fmt = output(f);
  const selectors = all(f, "selector");
  for (const s of selectors) {
    try {
      parseSelector(s);
    } catch (e) {
      fail(`Error: ${(e as Error).message}`, 1);
    }
  }
  if (verb === "update" && !flag(f, "entryID")) fail("Error: entry ID is required", 1);
  if (!flag(f, "spiffeID")) fail("Error: a SPIFFE ID is required", 1);
  if (!flag(f, "node") && !flag(f, "parentID"))
    fail("Error: a parent ID is required if the node flag is not set", 1);
  if (!selectors.length) fail("Error: at least one selector is required", 1);
  const num = (name: string) => {
    const v = flag(f, name);
    if (v !== undefined && !/^\d+$/.test(v))
      fail(`invalid value "${v}" for flag -${name}: parse error`, 1);
    return v === undefined ? undefined : Number(v);
  };
  const body = {
    entryId: flag(f, "entryID"),
    parentId: flag(f, "parentID"),
    spiffeId: flag(f, "spiffeID"),
    node: flag(f, "node") === "true",
    selectors,
    x509SvidTtl: num("x509SVIDTTL"),
    jwtSvidTtl: num("jwtSVIDTTL"),
    dnsNames: all(f, "dns").length ? all(f, "dns") : undefined,
    admin: flag(f, "admin") === "true" || undefined,
    downstream: flag(f, "downstream") === "true" || undefined,
  };
  const res = await api(f, verb === "create" ? "/entries" : "/entries/update", body);
  const entry = res.entry as EntryRecord;
  const status = res.status as { code: number; message: string };
  if (fmt === "json") {
    print({ results: [{ status, entry: entryJson(entry) }] });
    return status.code === 0 ? 0 : 1;
  }
  if (status.code !== 0) {
    process.stderr.write(
      `Failed to ${verb} the following entry (code: AlreadyExists, msg: "${status.message}"):\n${entryPretty(entry)}`,
    );
    return 1;
  }
  process.stdout.write(entryPretty(entry));
  return 0;
}

async function entryShow(argv: string[]): Promise<number> {
  const f = parseKnownFlags(
    argv,
    ["socketPath", "entryID", "parentID", "spiffeID", "selector", "output", "matchSelectorsOn"],
    ["downstream"],
  );
  const fmt = output(f);
  const id = flag(f, "entryID");
  if (id && (flag(f, "spiffeID") || flag(f, "parentID") || all(f, "selector").length))
    fail("Error: the -entryID flag can't be combined with others", 1);
  const selectors = all(f, "selector").map(parseSelector);
  const match = flag(f, "matchSelectorsOn", "superset");
  let entries = (await api(f, "/entries")).entries as EntryRecord[];
  if (id) {
    entries = entries.filter((e) => e.id === id);
    if (!entries.length)
      fail(
        `Error: error fetching entry ID ${id}: rpc error: code = NotFound desc = entry not found`,
        1,
      );
  }
  const spiffeId = flag(f, "spiffeID");
  const parentId = flag(f, "parentID");
  entries = entries.filter(
    (e) =>
      (!spiffeId || e.spiffeId === spiffeId) &&
      (!parentId || e.parentId === parentId) &&
      (!selectors.length ||
        selectorsMatch(e.selectors.map(selectorText), selectors.map(selectorText), match!)),
  );
  if (fmt === "json") print({ entries: entries.map(entryJson), next_page_token: "" });
  else
    process.stdout.write(
      `Found ${entries.length} ${entries.length === 1 ? "entry" : "entries"}\n` +
        entries.map(entryPretty).join(""),
    );
  return 0;
}

function selectorsMatch(have: string[], want: string[], mode: string): boolean {
  const h = new Set(have);
  const w = new Set(want);
  switch (mode) {
    case "exact":
      return h.size === w.size && [...w].every((s) => h.has(s));
    case "any":
      return [...w].some((s) => h.has(s));
    case "subset":
      return [...h].every((s) => w.has(s));
    case "superset":
      return [...w].every((s) => h.has(s));
  }
  fail("Error: unsupported match behavior", 1);
}

async function entryDelete(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["socketPath", "entryID", "output"]);
  const fmt = output(f);
  const id = flag(f, "entryID");
  if (!id) fail("Error: an entry ID is required", 1);
  await api(f, "/entries/delete", { entryId: id });
  if (fmt === "json") print({ results: [{ status: { code: 0, message: "OK" }, id }] });
  else process.stdout.write(`Deleted entry with ID: ${id}\n`);
  return 0;
}

async function agentCmd(verb: "list" | "show" | "evict", argv: string[]): Promise<number> {
  const known =
    verb === "list"
      ? ["socketPath", "output", "selector", "matchSelectorsOn"]
      : ["socketPath", "output", "spiffeID"];
  const f = parseKnownFlags(argv, known);
  const fmt = output(f);
  if (verb === "evict") {
    const id = flag(f, "spiffeID");
    if (!id) fail("Error: a SPIFFE ID is required", 1);
    await api(f, "/agents/evict", { spiffeId: id });
    if (fmt === "json") print({});
    else process.stdout.write("Agent evicted successfully\n");
    return 0;
  }
  const agents = (await api(f, "/agents")).agents as AgentRecord[];
  if (verb === "show") {
    const id = flag(f, "spiffeID");
    if (!id) fail("Error: a SPIFFE ID is required", 1);
    const agent = agents.find((a) => a.id === id);
    if (!agent) fail("Error: rpc error: code = NotFound desc = agent not found", 1);
    if (fmt === "json") print(agentJson(agent));
    else
      process.stdout.write(
        `Found an attested agent given its SPIFFE ID\n\n${agentPretty(agent)}\n`,
      );
    return 0;
  }
  const selectors = all(f, "selector").map(parseSelector);
  const match = flag(f, "matchSelectorsOn", "superset")!;
  const shown = selectors.length
    ? agents.filter((a) =>
        match === "superset"
          ? subsetOf(selectors, a.selectors)
          : selectorsMatch(a.selectors.map(selectorText), selectors.map(selectorText), match),
      )
    : agents;
  if (fmt === "json") print({ agents: shown.map(agentJson), next_page_token: "" });
  else if (!shown.length) process.stdout.write("No attested agents found\n");
  else
    process.stdout.write(
      `Found ${shown.length} attested ${shown.length === 1 ? "agent" : "agents"}:\n\n` +
        shown.map(agentPretty).join("\n\n") +
        "\n",
    );
  return 0;
}

async function bundleShow(argv: string[]): Promise<number> {
  const f = parseKnownFlags(argv, ["socketPath", "format", "output"]);
  const format = flag(f, "format", "pem");
  if (format !== "pem" && format !== "spiffe") fail(`Error: invalid format: "${format}"`, 1);
  const res = await api(f, "/bundle");
  if (format === "pem") process.stdout.write(String(res.pem));
  else process.stdout.write(JSON.stringify(res.spiffe, null, 4) + "\n");
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`Error: ${e.message}\n`);
    process.exit(1);
  },
);
