import { exitCodeMeaning } from "../command-error.js";

/**
 * curl runs on the host and reads its settings from a config file given on stdin
 * (`curl --config -`), so URLs, headers and bodies never appear in a process list or a
 * shell command line.
 */
export type CurlSetting = [option: string] | [option: string, value: string];

/** Renders curl config lines; every value is double-quoted with curl's escapes. */
export function curlConfig(settings: CurlSetting[]): string {
  return settings
    .map(([option, value]) => (value === undefined ? option : `${option} = ${quoted(value)}`))
    .join("\n")
    .concat("\n");
}

function quoted(value: string): string {
  const escaped = value
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\n/g, "\\n")
    .replace(/\r/g, "\\r")
    .replace(/\t/g, "\\t");
  return `"${escaped}"`;
}

const CURL_EXIT: Record<number, string> = {
  6: "could not resolve the host name",
  7: "could not connect (refused or no route)",
  22: "the server answered with an HTTP error status",
  23: "could not write the downloaded data",
  28: "timed out",
  35: "TLS handshake failed",
  47: "too many redirects",
  52: "the server sent nothing",
  56: "the connection broke while receiving",
  60: "the server certificate is not trusted (see caFile)",
  77: "the CA file could not be read",
};

/** What a curl exit code means, falling back to the generic meanings of exit codes. */
export function curlExitMeaning(rc: number): string {
  return CURL_EXIT[rc] ?? exitCodeMeaning(rc);
}

/** Checks that a URL is http(s) and well formed; returns the reason when it is not. */
export function urlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url}" is not a valid URL`;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    return `only http and https URLs are supported, got "${parsed.protocol}"`;
  return undefined;
}

/** The URL without user, password and query, for messages (they may carry credentials). */
export function displayUrl(url: string): string {
  const parsed = new URL(url);
  const query = parsed.search ? "?..." : "";
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}${query}`;
}
