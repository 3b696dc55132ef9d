import { commandError } from "../command-error.js";
import { OmensError, type Where } from "../errors.js";
import type { Connection } from "../connection/types.js";
import { parseProperties } from "../modules/tpm.js";

/** The host's operating system, from /etc/os-release. */
export interface OsFacts {
  /** `ID`, e.g. "debian". */
  id: string;
  /** `VERSION_ID`, e.g. "12" (empty on rolling releases such as sid). */
  versionId: string;
  /** `VERSION_CODENAME`, e.g. "bookworm". */
  codename: string;
  prettyName: string;
  /** `ID_LIKE`, e.g. ["debian"] on Ubuntu. */
  idLike: string[];
}

/** What runs as PID 1. */
export type InitFacts = { kind: "systemd"; version: number } | { kind: "other"; name: string };

/** A network interface and its addresses (without prefix lengths). */
export interface InterfaceFacts {
  name: string;
  ipv4: string[];
  ipv6: string[];
}

/** The host's addresses; loopback is listed in `interfaces` but not in `ipv4`/`ipv6`. */
export interface AddressFacts {
  ipv4: string[];
  ipv6: string[];
  interfaces: InterfaceFacts[];
}

/** Whether the host has a TPM, and through which TCTI tpm2-tools reach it. */
export type TpmFacts =
  | { kind: "absent"; reason: string }
  | {
      kind: "present";
      /** What TPM2TOOLS_TCTI should be for this host, e.g. "device:/dev/tpmrm0". */
      tcti: string;
      /** Where the TCTI came from: a TPM device node, or the host's TPM2TOOLS_TCTI. */
      source: "device" | "environment";
      family: string;
      manufacturer: string;
      firmwareVersion: string;
    }
  | { kind: "silent"; tcti: string; source: "device" | "environment"; detail: string };

/** One installed Debian package. */
export interface InstalledPackage {
  name: string;
  version: string;
}

/** A package lookup: installed with its version, or not installed. */
export type PackageFact = ({ kind: "installed" } & InstalledPackage) | { kind: "absent" };

/** The facts every host gets with the first gathering. */
export interface BaseFacts {
  os: OsFacts;
  kernel: { release: string; machine: string };
  hostname: string;
  fqdn: string;
  init: InitFacts;
  addresses: AddressFacts;
  tpm: TpmFacts;
}

/** Facts about a host, as tasks and predicates see them through `ctx.facts`. */
export interface HostFacts extends BaseFacts {
  /** Installed packages (dpkg-query), gathered when first read unless the play asked for them. */
  readonly packages: ReadonlyMap<string, InstalledPackage>;
  /** One package: installed (with its version) or absent. */
  package(name: string): PackageFact;
}

/** Which parts a gathering includes; the base facts are always part of it. */
export interface FactParts {
  packages: boolean;
}

/** What one gathering returned. */
export interface Gathered {
  base: BaseFacts;
  packages?: Map<string, InstalledPackage>;
}

/**
 * Thrown by `ctx.facts` when a fact has not been gathered yet on the host. The runner catches
 * it, gathers (one remote command) and evaluates again; it never reaches the user.
 */
export class FactsNeeded extends OmensError {
  constructor(readonly parts: FactParts) {
    super("a predicate read facts that were not gathered yet (the runner gathers them)", {
      code: "FACTS_NEEDED",
      family: "bug",
    });
  }
}

/** Gathers the base facts, and the package list when asked, with one remote command. */
export async function gatherFacts(
  connection: Connection,
  parts: FactParts,
  where: Where,
): Promise<Gathered> {
  const script = gatherScript(parts);
  const result = await connection.exec(script);
  if (result.rc !== 0) throw commandError("gathering facts", "gather facts", result, where);
  return parseGathered(result.stdout.toString("utf8"));
}

/** Builds the `ctx.facts` view; reading packages that were not gathered asks for them. */
export function hostFacts(gathered: Gathered): HostFacts {
  const { packages } = gathered;
  const all = () => {
    if (!packages) throw new FactsNeeded({ packages: true });
    return packages;
  };
  return {
    ...gathered.base,
    get packages() {
      return all();
    },
    package(name) {
      const found = all().get(name);
      return found ? { kind: "installed", ...found } : { kind: "absent" };
    },
  };
}

// Sections start with a line "@name"; each reads what it can and never fails the script.
const SECTIONS = {
  os: "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || true",
  kernel: "uname -r; uname -m",
  hostname:
    "cat /proc/sys/kernel/hostname; hostname -f 2>/dev/null || cat /proc/sys/kernel/hostname",
  init: [
    "cat /proc/1/comm 2>/dev/null || echo unknown",
    "[ -d /run/systemd/system ] && systemctl --version 2>/dev/null | head -n 1 || true",
  ].join("\n"),
  addresses: "ip -o addr show 2>/dev/null || true",
  tpm: [
    "s=; t=",
    "if [ -e /dev/tpmrm0 ]; then s=device; t=device:/dev/tpmrm0",
    "elif [ -e /dev/tpm0 ]; then s=device; t=device:/dev/tpm0",
    'elif [ -n "${TPM2TOOLS_TCTI:-}" ]; then s=environment; t=$TPM2TOOLS_TCTI; fi',
    'echo "tcti $s $t"',
    'if [ -n "$t" ]; then',
    "  if command -v tpm2_getcap >/dev/null 2>&1; then",
    '    o=$(TPM2TOOLS_TCTI="$t" timeout 10 tpm2_getcap properties-fixed 2>&1); echo "rc $?"; printf "%s\\n" "$o"',
    "  else echo 'rc 127'; echo 'tpm2_getcap is not installed'; fi",
    "fi",
  ].join("\n"),
  packages:
    "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\n' 2>/dev/null || true",
} as const;

type Section = keyof typeof SECTIONS;

/** The one shell script that gathers the asked parts. */
export function gatherScript(parts: FactParts): string {
  const names = (Object.keys(SECTIONS) as Section[]).filter(
    (name) => name !== "packages" || parts.packages,
  );
  return names.map((name) => `echo @${name}\n${SECTIONS[name]}`).join("\n");
}

/** Reads the gather script's output (pure, so it is unit-tested without a host). */
export function parseGathered(text: string): Gathered {
  const sections = splitSections(text);
  const base: BaseFacts = {
    os: parseOs(sections.get("os") ?? []),
    kernel: {
      release: sections.get("kernel")?.[0] ?? "",
      machine: sections.get("kernel")?.[1] ?? "",
    },
    hostname: sections.get("hostname")?.[0] ?? "",
    fqdn: sections.get("hostname")?.[1] ?? sections.get("hostname")?.[0] ?? "",
    init: parseInit(sections.get("init") ?? []),
    addresses: parseAddresses(sections.get("addresses") ?? []),
    tpm: parseTpm(sections.get("tpm") ?? []),
  };
  const packages = sections.get("packages");
  return packages ? { base, packages: parsePackages(packages) } : { base };
}

function splitSections(text: string): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.split("\n")) {
    const header = /^@([a-z]+)$/.exec(line);
    if (header?.[1] && header[1] in SECTIONS) sections.set(header[1], (current = []));
    else current?.push(line);
  }
  for (const lines of sections.values()) while (lines.at(-1) === "") lines.pop();
  return sections;
}

function parseOs(lines: string[]): OsFacts {
  const fields = new Map<string, string>();
  for (const line of lines) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line);
    if (match?.[1]) fields.set(match[1], unquote(match[2] ?? ""));
  }
  return {
    id: fields.get("ID") ?? "",
    versionId: fields.get("VERSION_ID") ?? "",
    codename: fields.get("VERSION_CODENAME") ?? "",
    prettyName: fields.get("PRETTY_NAME") ?? "",
    idLike: (fields.get("ID_LIKE") ?? "").split(" ").filter(Boolean),
  };
}

function unquote(value: string): string {
  const match = /^(["'])(.*)\1$/.exec(value);
  return match ? (match[2] ?? "").replace(/\\(["\\$`])/g, "$1") : value;
}

function parseInit(lines: string[]): InitFacts {
  const version = /^systemd (\d+)/.exec(lines[1] ?? "");
  if (lines[0] === "systemd" && version) return { kind: "systemd", version: Number(version[1]) };
  return { kind: "other", name: lines[0] ?? "unknown" };
}

function parseAddresses(lines: string[]): AddressFacts {
  const interfaces = new Map<string, InterfaceFacts>();
  for (const line of lines) {
    const match = /^\d+:\s+(\S+)\s+(inet6?)\s+([0-9a-fA-F:.]+)\//.exec(line);
    if (!match?.[1] || !match[3]) continue;
    const name = match[1].replace(/@.*$/, "");
    const entry = interfaces.get(name) ?? { name, ipv4: [], ipv6: [] };
    (match[2] === "inet" ? entry.ipv4 : entry.ipv6).push(match[3]);
    interfaces.set(name, entry);
  }
  const list = [...interfaces.values()];
  const outside = list.filter((i) => i.name !== "lo");
  return {
    ipv4: outside.flatMap((i) => i.ipv4),
    ipv6: outside.flatMap((i) => i.ipv6),
    interfaces: list,
  };
}

function parseTpm(lines: string[]): TpmFacts {
  const [, source, tcti] = /^tcti (\S*) ?(.*)$/.exec(lines[0] ?? "") ?? [];
  if (!source || !tcti)
    return { kind: "absent", reason: "no /dev/tpmrm0 or /dev/tpm0, and TPM2TOOLS_TCTI is not set" };
  const from = source === "device" ? "device" : "environment";
  const rc = Number(/^rc (\d+)$/.exec(lines[1] ?? "")?.[1] ?? "1");
  const output = lines.slice(2).join("\n");
  if (rc !== 0) {
    const detail = `tpm2_getcap exit code ${rc}: ${output.trim().split("\n").slice(-3).join(" ")}`;
    return { kind: "silent", tcti, source: from, detail };
  }
  const info = parseProperties(output);
  return {
    kind: "present",
    tcti,
    source: from,
    family: info.family,
    manufacturer: info.manufacturer,
    firmwareVersion: info.firmwareVersion,
  };
}

function parsePackages(lines: string[]): Map<string, InstalledPackage> {
  const packages = new Map<string, InstalledPackage>();
  for (const line of lines) {
    const [name, version, status] = line.split("\t");
    if (name && version && status?.startsWith("ii")) packages.set(name, { name, version });
  }
  return packages;
}
