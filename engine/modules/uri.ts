import type { Deferrable } from "../dsl/deferred.js";
import { outputTail } from "../command-error.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { isSecret, type Secret } from "../secret.js";
import { ArgReader } from "./args.js";
import { curlConfig, curlExitMeaning, displayUrl, urlProblem, type CurlSetting } from "./curl.js";
import { failedPlan } from "./failure.js";
import type { ModuleDefinition, Plan, PlanContext } from "./types.js";

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] as const;
type Method = (typeof METHODS)[number];

/** Arguments of the `uri` module. */
export interface UriArgs {
  /** An http or https URL, requested by curl on the host (so the host's loopback works). */
  url: string;
  method?: Method;
  /** The status codes that count as success (default 200). */
  status?: number | number[];
  /** Request headers; Secret values are sent but never shown. */
  headers?: Record<string, string | Secret>;
  /** The request body: a string, a Secret, or a value sent as JSON (with its content type). */
  body?: string | Secret | Record<string, unknown> | unknown[];
  /** Fail unless the response body contains this text. */
  bodyContains?: string;
  /** Parse the response body as JSON and register it as `json`; a body that is not JSON fails. */
  json?: boolean;
  /** A PEM CA bundle on the host that the server's certificate must chain to. */
  caFile?: string;
  /** Seconds the whole request may take (default 30). */
  timeout?: number;
  /** Register the response body as `body` (default true). */
  returnContent?: boolean;
}

/** What `uri` registers, beside the usual task fields. */
export interface UriResult {
  status: number;
  url: string;
  body?: string;
  json?: unknown;
}

interface Valid {
  url: string;
  shown: string;
  method: Method;
  status: number[];
  headers: [string, string][];
  body?: string;
  bodyContains?: string;
  json: boolean;
  caFile?: string;
  timeout: number;
  returnContent: boolean;
}

type Facts =
  | { kind: "response"; status: number; body: string }
  | { kind: "error"; detail: string }
  | { kind: "not-sent" };

/** Methods that only read; any other request may change the server. */
const READ_METHODS: readonly Method[] = ["GET", "HEAD"];

/** How much of a response body a failure message shows. */
const BODY_TAIL = 400;

/**
 * Makes an HTTP(S) request from the host and checks the answer. It never reports changed
 * (give `changedWhen` for a request that writes). GET and HEAD run in check mode too; other
 * methods may change the server, so check mode skips them (`checkMode: false` sends them).
 *
 * @example
 * uri({ url: "https://127.0.0.1:8200/v1/sys/health", caFile: "/etc/openbao/tls/ca.pem", json: true, register: "health" })
 */
export function uri(args: Deferrable<UriArgs> & TaskOptions): Task {
  return makeTask("uri", args, callerLocation());
}

export const uriModule: ModuleDefinition<Valid, Facts> = {
  name: "uri",
  validate(raw, where) {
    const args = new ArgReader("uri", raw, where, [
      "url",
      "method",
      "status",
      "headers",
      "body",
      "bodyContains",
      "json",
      "caFile",
      "timeout",
      "returnContent",
    ]);
    const url = args.string("url");
    const problem = urlProblem(url);
    if (problem) args.fail("ARG_VALUE", `uri: "url": ${problem}`);
    const valid: Valid = {
      url,
      shown: displayUrl(url),
      method: args.oneOf("method", METHODS, "GET"),
      status: readStatus(args),
      headers: readHeaders(args),
      json: args.optionalBoolean("json") ?? false,
      timeout: args.optionalNumber("timeout") ?? 30,
      returnContent: args.optionalBoolean("returnContent") ?? true,
    };
    if (valid.timeout <= 0) args.fail("ARG_VALUE", `uri: "timeout" must be a positive number`);
    readBody(args, valid);
    const bodyContains = args.optionalString("bodyContains");
    if (bodyContains !== undefined) valid.bodyContains = bodyContains;
    const caFile = args.optionalString("caFile");
    if (caFile !== undefined) valid.caFile = caFile;
    return valid;
  },
  label: (args) => `uri ${args.method} ${args.shown}`,
  async facts(args, reader, ctx) {
    if (ctx.check && !READ_METHODS.includes(args.method)) return { kind: "not-sent" };
    const result = await reader.probe("curl --config -", curlConfig(requestSettings(args)));
    if (result.rc !== 0)
      return {
        kind: "error",
        detail: `exit code ${result.rc} (${curlExitMeaning(result.rc)})${tailOf(result)}`,
      };
    const out = result.stdout.toString("utf8");
    const split = out.lastIndexOf("\n");
    return { kind: "response", status: Number(out.slice(split + 1)), body: out.slice(0, split) };
  },
  plan(args, facts, ctx) {
    const what = `${args.method} ${args.shown}`;
    if (facts.kind === "error") return failedPlan(`${what} failed: ${facts.detail}`, ctx);
    if (facts.kind === "not-sent")
      return {
        status: "skipped",
        reason: `check mode: ${args.method} may change the server, so it was not sent (a real run sends it)`,
        ops: [],
      };
    return judge(args, facts.status, facts.body, what, ctx);
  },
};

function readStatus(args: ArgReader): number[] {
  const value = args.value("status") ?? 200;
  const list = Array.isArray(value) ? (value as unknown[]) : [value];
  if (
    list.length === 0 ||
    !list.every((s) => typeof s === "number" && Number.isInteger(s) && s >= 100 && s <= 599)
  )
    args.fail("ARG_VALUE", `uri: "status" must be an HTTP status (100-599) or a list of them`);
  return list as number[];
}

function readHeaders(args: ArgReader): [string, string][] {
  const value = args.value("headers") ?? {};
  if (typeof value !== "object" || value === null || Array.isArray(value))
    args.fail("ARG_TYPE", `uri: "headers" must be an object of header names to values`);
  return Object.entries(value as Record<string, unknown>).map(([name, v]) => {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
      args.fail("ARG_VALUE", `uri: header name "${name}" is not a valid HTTP header name`);
    if (isSecret(v)) return [name, v.reveal()];
    if (typeof v !== "string" || /[\r\n]/.test(v))
      args.fail("ARG_VALUE", `uri: header "${name}" must be a one-line string or a Secret`);
    return [name, v];
  });
}

function readBody(args: ArgReader, valid: Valid): void {
  const body = args.value("body");
  if (body === undefined) return;
  if (valid.method === "GET" || valid.method === "HEAD")
    args.fail("ARG_CONFLICT", `uri: a "body" needs method POST, PUT, PATCH or DELETE`);
  if (isSecret(body)) valid.body = body.reveal();
  else if (typeof body === "string") valid.body = body;
  else if (typeof body === "object" && body !== null) {
    valid.body = JSON.stringify(body);
    if (!valid.headers.some(([name]) => name.toLowerCase() === "content-type"))
      valid.headers.push(["Content-Type", "application/json"]);
  } else args.fail("ARG_TYPE", `uri: "body" must be a string, a Secret, an object or an array`);
}

function requestSettings(args: Valid): CurlSetting[] {
  const settings: CurlSetting[] = [
    ["url", args.url],
    ["silent"],
    ["show-error"],
    ["proto", "=http,https"],
    ["max-time", String(args.timeout)],
    // A newline, then the status: the body is everything before the output's last newline.
    ["write-out", "\n%{http_code}"],
  ];
  if (args.method === "HEAD") settings.push(["head"], ["output", "/dev/null"]);
  else if (args.method !== "GET") settings.push(["request", args.method]);
  for (const [name, value] of args.headers) settings.push(["header", `${name}: ${value}`]);
  if (args.body !== undefined) settings.push(["data-raw", args.body]);
  if (args.caFile) settings.push(["cacert", args.caFile]);
  return settings;
}

/** Decides ok or failed from the answer; the result is registered either way. */
function judge(args: Valid, status: number, body: string, what: string, ctx: PlanContext): Plan {
  const result: UriResult = { status, url: args.shown };
  if (args.returnContent) result.body = body;
  const fail = (reason: string): Plan =>
    failedPlan(`${what}: ${reason}${bodyTail(body)}`, ctx, { ...result });
  if (!args.status.includes(status))
    return fail(`status ${status}, expected ${args.status.join(" or ")}`);
  if (args.bodyContains !== undefined && !body.includes(args.bodyContains))
    return fail(`status ${status}, but the body does not contain "${args.bodyContains}"`);
  if (args.json) {
    try {
      result.json = JSON.parse(body) as unknown;
    } catch (error) {
      return fail(`status ${status}, but the body is not JSON (${(error as Error).message})`);
    }
  }
  return { status: "ok", reason: `status ${status}`, ops: [], result: { ...result } };
}

function bodyTail(body: string): string {
  if (body === "") return "";
  const tail = body.length > BODY_TAIL ? `...${body.slice(-BODY_TAIL)}` : body;
  return `\n  body: ${tail.trimEnd()}`;
}

function tailOf(result: { stdout: Buffer; stderr: Buffer }): string {
  const tail = outputTail({ stdout: Buffer.alloc(0), stderr: result.stderr });
  return tail ? `: ${tail}` : "";
}
