import { readFileSync } from "node:fs";
import { request } from "node:https";
import { inputError, type OmensError } from "./errors.js";

/** Where and how to reach OpenBao, from the variables its own CLI reads. */
export interface BaoSettings {
  addr: string;
  token: string;
  /** PEM CA bundle for the server's certificate; the system's CAs when absent. */
  caCert?: string;
}

const TIMEOUT_MS = 10_000;

/** BAO_ADDR, BAO_TOKEN and BAO_CACERT from the environment; a missing one is an input error. */
export function baoSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): BaoSettings {
  const addr = env.BAO_ADDR;
  const token = env.BAO_TOKEN;
  if (!addr) throw baoError("BAO_ADDR is not set (the OpenBao address, https://host:8200)");
  if (!addr.startsWith("https://"))
    throw baoError(
      `BAO_ADDR must be an https:// address, got "${addr}": secrets never travel in clear`,
    );
  if (!token) throw baoError("BAO_TOKEN is not set (a token allowed to read the secret)");
  return {
    addr: addr.replace(/\/+$/, ""),
    token,
    ...(env.BAO_CACERT ? { caCert: env.BAO_CACERT } : {}),
  };
}

/**
 * Reads one field of a KV version 2 secret: `path` is "<mount>/<secret path>", as in
 * `bao kv get -mount=<mount> <secret path>`; the request goes to /v1/<mount>/data/<secret path>.
 */
export async function readKvField(
  settings: BaoSettings,
  path: string,
  field: string,
): Promise<string> {
  const [mount, ...rest] = path.replace(/^\/+/, "").split("/");
  if (!mount || rest.length === 0)
    throw baoError(`secret path "${path}" must be "<mount>/<path>", e.g. "secret/omens/db"`);
  const url = `${settings.addr}/v1/${mount}/data/${rest.join("/")}`;
  const { status, body } = await get(url, settings);
  const where = `${path} (${url})`;
  if (status === 403)
    throw baoError(
      `OpenBao refused to read ${where}: permission denied (HTTP 403)`,
      "check that BAO_TOKEN is valid and its policy allows read on this path",
    );
  if (status === 404) throw baoError(`no secret at ${where} (HTTP 404)`);
  if (status !== 200)
    throw baoError(`OpenBao answered HTTP ${status} for ${where}: ${baoErrors(body)}`);
  const data = parseKv(body, where);
  const value = data[field];
  if (typeof value !== "string") {
    const fields = Object.keys(data).join(", ") || "none";
    throw baoError(`secret ${path} has no string field "${field}" (fields: ${fields})`);
  }
  return value;
}

function get(url: string, settings: BaoSettings): Promise<{ status: number; body: string }> {
  const ca = settings.caCert ? readCa(settings.caCert) : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "GET",
        headers: { "X-Vault-Token": settings.token },
        ...(ca ? { ca } : {}),
        timeout: TIMEOUT_MS,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(baoError(`no answer within ${TIMEOUT_MS} ms`)));
    req.on("error", (error) =>
      reject(
        baoError(
          `cannot reach OpenBao at ${settings.addr}: ${error.message}`,
          settings.caCert
            ? `the server's certificate must chain to BAO_CACERT (${settings.caCert})`
            : "set BAO_CACERT to the CA bundle of the server's certificate",
        ),
      ),
    );
    req.end();
  });
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw baoError(`cannot read BAO_CACERT ${file}: ${(error as Error).message}`);
  }
}

function parseKv(body: string, where: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(body) as { data?: { data?: unknown } };
    const data = parsed.data?.data;
    if (data && typeof data === "object") return data as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw baoError(`the answer for ${where} is not a KV version 2 secret ({"data":{"data":{...}}})`);
}

function baoErrors(body: string): string {
  try {
    return ((JSON.parse(body) as { errors?: string[] }).errors ?? []).join("; ") || "no details";
  } catch {
    return "no details";
  }
}

function baoError(message: string, hint?: string): OmensError {
  return inputError("usage", "OPENBAO_READ", message, {}, hint);
}
