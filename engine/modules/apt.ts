import type { Deferrable } from "../dsl/deferred.js";
import { callerLocation, type Task, type TaskOptions } from "../dsl/task.js";
import type { FileFact, HostReader } from "../facts/reader.js";
import { quote, quoteArgv } from "../shell.js";
import { ArgReader } from "./args.js";
import { makeNamedTask, type NamedResourceOptions } from "./named-task.js";
import { failedPlan } from "./failure.js";
import type { ModuleDefinition, Plan, PlanContext } from "./types.js";

/** Arguments of the `apt` module: packages by name, or one .deb file on the host. */
export interface AptArgs {
  /** Package names (name the task itself with `taskName`). With `deb`, the package it holds. */
  name?: string | string[];
  /** present: installed (any version); latest: the candidate apt knows; absent: removed. */
  state?: "present" | "latest" | "absent";
  /** A .deb file on the host, installed with apt-get so that its dependencies are resolved. */
  deb?: string;
  /** With state "absent": also remove configuration files (apt-get purge). */
  purge?: boolean;
}

interface Valid {
  names: string[];
  state: "present" | "latest" | "absent";
  deb?: string;
  purge: boolean;
}

/** One package as dpkg and apt know it. */
export interface PackageFact {
  name: string;
  /** The installed version, if installed. */
  installed?: string;
  /** The version apt would install (only read for state "latest"). */
  candidate?: string;
}

type Facts =
  | { kind: "packages"; packages: PackageFact[] }
  | { kind: "deb"; file: { name: string; version: string }; installed?: string }
  | { kind: "deb-missing"; fact: FileFact }
  | { kind: "deb-unreadable"; detail: string };

const APT_GET = [
  "env",
  "DEBIAN_FRONTEND=noninteractive",
  "apt-get",
  "-y",
  "-q",
  "-o",
  "DPkg::Lock::Timeout=120",
  "-o",
  "Dpkg::Options::=--force-confdef",
  "-o",
  "Dpkg::Options::=--force-confold",
];

/**
 * Installs, upgrades or removes Debian packages with apt-get; facts come from dpkg-query.
 *
 * @example
 * apt({ name: ["tpm2-tools", "jq"] })
 * apt({ name: "spire-agent", deb: "/var/cache/omens/spire-agent_1.9.6_amd64.deb" })
 */
export function apt(
  args: Deferrable<AptArgs> & NamedResourceOptions & Omit<TaskOptions, "name">,
): Task {
  return makeNamedTask("apt", args, callerLocation());
}

export const aptModule: ModuleDefinition<Valid, Facts> = {
  name: "apt",
  validate(raw, where) {
    const args = new ArgReader("apt", raw, where, ["name", "state", "deb", "purge"]);
    const valid: Valid = {
      names: readNames(args),
      state: args.oneOf("state", ["present", "latest", "absent"] as const, "present"),
      purge: args.optionalBoolean("purge") ?? false,
    };
    const deb = args.optionalString("deb");
    if (deb !== undefined) {
      if (!deb.startsWith("/") || !deb.endsWith(".deb"))
        args.fail("ARG_VALUE", `apt: "deb" must be an absolute path to a .deb file, got "${deb}"`);
      if (valid.state !== "present")
        args.fail("ARG_CONFLICT", `apt: "deb" only works with state "present"`);
      if (valid.names.length > 1)
        args.fail("ARG_CONFLICT", `apt: with "deb", "name" is the one package the file holds`);
      valid.deb = deb;
    } else if (valid.names.length === 0) args.fail("ARG_MISSING", `apt: give "name" or "deb"`);
    if (valid.purge && valid.state !== "absent")
      args.fail("ARG_CONFLICT", `apt: "purge" only works with state "absent"`);
    return valid;
  },
  label: (args) => `apt ${args.deb ?? args.names.join(", ")}`,
  async facts(args, reader) {
    if (args.deb) return debFacts(args.deb, reader);
    const packages = await installedVersions(args.names, reader);
    if (args.state === "latest") await addCandidates(packages, reader);
    return { kind: "packages", packages };
  },
  plan(args, facts, ctx) {
    switch (facts.kind) {
      case "deb-missing":
        return failedPlan(
          `${args.deb ?? ""} is ${facts.fact.kind} on the host, not a .deb file`,
          ctx,
        );
      case "deb-unreadable":
        return failedPlan(`${args.deb ?? ""} is not a readable .deb: ${facts.detail}`, ctx);
      case "deb":
        return planDeb(args, facts.file, facts.installed, ctx);
      case "packages":
        return args.state === "absent"
          ? planRemove(args, facts.packages)
          : planInstall(args, facts.packages);
    }
  },
};

function readNames(args: ArgReader): string[] {
  const value = args.value("name");
  if (value === undefined) return [];
  const names = typeof value === "string" ? [args.string("name")] : (args.stringList("name") ?? []);
  for (const name of names) {
    if (!/^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$/.test(name))
      args.fail("ARG_VALUE", `apt: "${name}" is not a Debian package name`);
  }
  return names;
}

async function debFacts(deb: string, reader: HostReader): Promise<Facts> {
  const fact = (await reader.stat([deb])).get(deb) ?? { kind: "absent" };
  if (fact.kind !== "file") return { kind: "deb-missing", fact };
  const fields = await reader.probe(
    `dpkg-deb --show --showformat='\${Package}\\t\${Version}' ${quote(deb)}`,
  );
  const [name = "", version = ""] = fields.stdout.toString("utf8").trim().split("\t");
  if (fields.rc !== 0 || !name || !version)
    return { kind: "deb-unreadable", detail: fields.stderr.toString("utf8").trim() };
  const [installed] = await installedVersions([name], reader);
  return {
    kind: "deb",
    file: { name, version },
    ...(installed?.installed ? { installed: installed.installed } : {}),
  };
}

/** Installed versions from dpkg-query; a package dpkg has never seen is simply not installed. */
async function installedVersions(names: string[], reader: HostReader): Promise<PackageFact[]> {
  const result = await reader.probe(
    `dpkg-query --show --showformat='\${Package}\\t\${db:Status-Status}\\t\${Version}\\n' ${quoteArgv(names)} 2>/dev/null || true`,
  );
  const installed = new Map<string, string>();
  for (const line of result.stdout.toString("utf8").split("\n")) {
    const [name = "", status = "", version = ""] = line.split("\t");
    if (status === "installed") installed.set(name, version);
  }
  return names.map((name) => {
    const version = installed.get(name.replace(/:.*$/, "")) ?? installed.get(name);
    return version === undefined ? { name } : { name, installed: version };
  });
}

async function addCandidates(packages: PackageFact[], reader: HostReader): Promise<void> {
  const names = packages.map((p) => p.name);
  const result = await reader.probe(`LC_ALL=C apt-cache policy ${quoteArgv(names)}`);
  let current: PackageFact | undefined;
  for (const line of result.stdout.toString("utf8").split("\n")) {
    const header = /^(\S+):$/.exec(line);
    if (header) current = packages.find((p) => p.name === header[1]);
    const candidate = /^\s+Candidate: (\S+)/.exec(line);
    if (candidate?.[1] && current && candidate[1] !== "(none)") current.candidate = candidate[1];
  }
}

function planDeb(
  args: Valid,
  file: { name: string; version: string },
  installed: string | undefined,
  ctx: PlanContext,
): Plan {
  const deb = args.deb ?? "";
  if (args.names.length === 1 && args.names[0] !== file.name)
    return failedPlan(`${deb} holds package ${file.name}, not ${args.names[0] ?? ""}`, ctx);
  if (installed === file.version)
    return { status: "ok", reason: `${file.name} ${file.version} is installed`, ops: [] };
  const from = installed ?? "absent";
  return {
    status: "changed",
    reason: `${file.name} is ${installed ? `at ${installed}` : "not installed"}; ${deb} has ${file.version}`,
    ops: [{ kind: "exec", command: quoteArgv([...APT_GET, "install", deb]) }],
    diff: [{ path: `package ${file.name}`, attributes: [`${from} -> ${file.version}`] }],
  };
}

function planInstall(args: Valid, packages: PackageFact[]): Plan {
  const missing = packages.filter((p) => p.installed === undefined);
  const outdated =
    args.state === "latest"
      ? packages.filter((p) => p.installed && p.candidate && p.candidate !== p.installed)
      : [];
  if (missing.length === 0 && outdated.length === 0) {
    const versions = packages.map((p) => `${p.name} ${p.installed ?? ""}`).join(", ");
    return { status: "ok", reason: `installed: ${versions}`, ops: [] };
  }
  const lines = [
    ...missing.map((p) => `${p.name}: absent -> ${p.candidate ?? "installed"}`),
    ...outdated.map((p) => `${p.name}: ${p.installed ?? ""} -> ${p.candidate ?? ""}`),
  ];
  const names = [...missing, ...outdated].map((p) => p.name);
  return {
    status: "changed",
    reason: lines.join(", "),
    ops: [{ kind: "exec", command: quoteArgv([...APT_GET, "install", ...names]) }],
    diff: [{ path: "packages", attributes: lines }],
  };
}

function planRemove(args: Valid, packages: PackageFact[]): Plan {
  const present = packages.filter((p) => p.installed !== undefined);
  if (present.length === 0)
    return { status: "ok", reason: `not installed: ${args.names.join(", ")}`, ops: [] };
  const lines = present.map((p) => `${p.name}: ${p.installed ?? ""} -> absent`);
  const verb = args.purge ? "purge" : "remove";
  return {
    status: "changed",
    reason: lines.join(", "),
    ops: [{ kind: "exec", command: quoteArgv([...APT_GET, verb, ...present.map((p) => p.name)]) }],
    diff: [{ path: "packages", attributes: lines }],
  };
}
