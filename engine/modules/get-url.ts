import type { Deferrable } from "../dsl/deferred.js";
import { dirname } from "node:path";
import { outputTail } from "../command-error.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { taskError } from "../errors.js";
import type { FileFact } from "../facts/reader.js";
import { formatMode } from "../mode.js";
import { quote } from "../shell.js";
import { ArgReader } from "./args.js";
import {
  ATTRIBUTE_KEYS,
  attributeChanges,
  desiredMode,
  readAttributes,
  type Attributes,
} from "./attributes.js";
import { curlConfig, curlExitMeaning, displayUrl, urlProblem, type CurlSetting } from "./curl.js";
import { failedPlan } from "./failure.js";
import type { ModuleDefinition, Op, Plan } from "./types.js";

/** Arguments of the `getUrl` module. */
export interface GetUrlArgs {
  /** An http or https URL, fetched by curl on the host (redirects are followed). */
  url: string;
  /** Absolute path of the file on the host; its folder must exist. */
  dest: string;
  /** The SHA-256 the file must have (64 hex digits). A download that differs is discarded. */
  sha256: string;
  owner?: string;
  group?: string;
  mode?: string;
  /** Seconds the whole download may take (default 120). */
  timeout?: number;
  /** A PEM CA bundle on the host that the server's certificate must chain to. */
  caFile?: string;
}

interface Valid extends Attributes {
  url: string;
  shown: string;
  dest: string;
  sha256: string;
  timeout: number;
  caFile?: string;
}

interface Facts {
  dest: FileFact;
  folder: FileFact;
}

/** Exit code the download script uses when the file's hash is not the expected one. */
const MISMATCH_EXIT = 65;

/**
 * Downloads a file on the host, checks its SHA-256 and moves it into place atomically. A file
 * already at `dest` with the right hash is not downloaded again.
 *
 * @example
 * getUrl({ url: "https://releases.example/spire-1.9.6.tar.gz", dest: "/opt/spire/spire.tar.gz", sha256: "5b1c...e0" })
 */
export function getUrl(args: Deferrable<GetUrlArgs> & TaskOptions): Task {
  return makeTask("getUrl", args, callerLocation());
}

export const getUrlModule: ModuleDefinition<Valid, Facts> = {
  name: "getUrl",
  validate(raw, where) {
    const args = new ArgReader("getUrl", raw, where, [
      "url",
      "dest",
      "sha256",
      "timeout",
      "caFile",
      ...ATTRIBUTE_KEYS,
    ]);
    const url = args.string("url");
    const problem = urlProblem(url);
    if (problem) args.fail("ARG_VALUE", `getUrl: "url": ${problem}`);
    const dest = args.string("dest");
    if (!dest.startsWith("/") || dest.endsWith("/"))
      args.fail("ARG_VALUE", `getUrl: "dest" must be an absolute file path, got "${dest}"`);
    const valid: Valid = {
      url,
      shown: displayUrl(url),
      dest,
      sha256: args.sha256("sha256"),
      timeout: positive(args, "timeout") ?? 120,
      ...readAttributes(args, where),
    };
    const caFile = args.optionalString("caFile");
    if (caFile) valid.caFile = caFile;
    return valid;
  },
  label: (args) => `getUrl ${args.dest}`,
  async facts(args, reader) {
    const folder = dirname(args.dest);
    const facts = await reader.stat([args.dest, folder]);
    return {
      dest: facts.get(args.dest) ?? { kind: "absent" },
      folder: facts.get(folder) ?? { kind: "absent" },
    };
  },
  plan(args, facts, ctx) {
    if (facts.folder.kind !== "directory")
      return failedPlan(
        `folder ${dirname(args.dest)} does not exist; getUrl creates no folders (a file task with state "directory" before it does)`,
        ctx,
      );
    const { dest } = facts;
    if (dest.kind === "directory" || dest.kind === "other")
      return failedPlan(`${args.dest} is a ${dest.kind}, not a file`, ctx);
    if (dest.kind === "file" && dest.sha256 === args.sha256) return planAttributes(args, dest);
    const before = dest.kind === "file" ? `sha256 ${short(dest.sha256)}` : dest.kind;
    const reason =
      dest.kind === "file"
        ? `${args.dest} has sha256 ${dest.sha256}, not ${args.sha256}`
        : `${args.dest} is absent`;
    return {
      status: "changed",
      reason: ctx.check ? `would download ${args.shown}: ${reason}` : reason,
      ops: [downloadOp(args, dest)],
      diff: [{ path: args.dest, attributes: [`${before} -> sha256 ${short(args.sha256)}`] }],
    };
  },
  finish(args, plan, output) {
    if (output.rc === undefined) return { status: plan.status, reason: plan.reason };
    const stdout = output.stdout ?? "";
    if (output.rc === MISMATCH_EXIT && stdout.startsWith("sha256-mismatch ")) {
      const got = stdout.slice("sha256-mismatch ".length).trim();
      throw taskError(
        "GET_URL_CHECKSUM",
        `getUrl: ${args.shown} has sha256 ${got}, expected ${args.sha256}; the download was discarded and ${args.dest} left as it was`,
      );
    }
    if (output.rc !== 0) {
      const tail = outputTail({
        stdout: Buffer.from(stdout),
        stderr: Buffer.from(output.stderr ?? ""),
      });
      throw taskError(
        "GET_URL_FAILED",
        `getUrl: downloading ${args.shown} failed: exit code ${output.rc} (${curlExitMeaning(output.rc)})${tail ? `\n${tail}` : ""}`,
      );
    }
    return { status: "changed", reason: `downloaded ${args.shown} (sha256 verified)` };
  },
};

function positive(args: ArgReader, key: string): number | undefined {
  const value = args.optionalNumber(key);
  if (value !== undefined && value <= 0)
    args.fail("ARG_VALUE", `getUrl: "${key}" must be a positive number of seconds, got ${value}`);
  return value;
}

function planAttributes(args: Valid, dest: Extract<FileFact, { kind: "file" }>): Plan {
  const { ops, lines } = attributeChanges(args.dest, dest, args);
  if (ops.length === 0)
    return { status: "ok", reason: `${args.dest} already has sha256 ${short(args.sha256)}`, ops };
  return {
    status: "changed",
    reason: `sha256 matches; ${lines.join(", ")}`,
    ops,
    diff: [{ path: args.dest, attributes: lines }],
  };
}

/**
 * Downloads into a temp file beside `dest`, checks the hash, sets mode and owner, then renames
 * it over `dest`. Any failure removes the temp file, so nothing partial or unverified remains.
 */
function downloadOp(args: Valid, dest: FileFact): Op {
  const existing = dest.kind === "file" ? dest.mode : undefined;
  const mode = desiredMode(args, existing ?? 0o644, false);
  const owner = [args.owner ?? "", args.group ? `:${args.group}` : ""].join("");
  const script = [
    "set -e",
    `d=${quote(args.dest)}`,
    `t=$(mktemp -- "$(dirname -- "$d")/.omens-get.XXXXXXXX")`,
    `trap 'rm -f -- "$t"' EXIT`,
    `curl --config - --output "$t"`,
    `h=$(sha256sum -- "$t"); h=\${h%% *}`,
    `[ "$h" = ${args.sha256} ] || { echo "sha256-mismatch $h"; exit ${MISMATCH_EXIT}; }`,
    mode !== undefined
      ? `chmod ${formatMode(mode)} -- "$t"`
      : existing !== undefined
        ? `chmod --reference="$d" -- "$t"`
        : `chmod "$(printf %04o $((0666 & ~0$(umask))))" -- "$t"`,
    owner
      ? `chown ${quote(owner)} -- "$t"`
      : `[ -e "$d" ] && chown --reference="$d" -- "$t" || true`,
    `sync -- "$t" 2>/dev/null || true`,
    `mv -f -- "$t" "$d"`,
    `trap - EXIT`,
  ].join("\n");
  return {
    kind: "exec",
    command: script,
    display: `download ${args.shown} -> ${args.dest} (sha256 checked, atomic)`,
    stdin: curlConfig(downloadSettings(args)),
    allowFailure: true,
    path: args.dest,
  };
}

function downloadSettings(args: Valid): CurlSetting[] {
  const settings: CurlSetting[] = [
    ["url", args.url],
    ["fail"],
    ["silent"],
    ["show-error"],
    ["location"],
    ["proto", "=http,https"],
    ["proto-redir", "=http,https"],
    ["max-redirs", "10"],
    ["max-time", String(args.timeout)],
  ];
  if (args.caFile) settings.push(["cacert", args.caFile]);
  return settings;
}

function short(hash: string | undefined): string {
  return hash ? `${hash.slice(0, 12)}...` : "unknown";
}
