import { describe, expect, it } from "vitest";
import { curlConfig } from "../../engine/modules/curl.js";
import { uriModule } from "../../engine/modules/uri.js";
import type { PlanContext } from "../../engine/modules/types.js";
import { Secret } from "../../engine/secret.js";

const ctx = {} as PlanContext;
const args = (extra: Record<string, unknown> = {}) =>
  uriModule.validate({ url: "https://127.0.0.1:8200/v1/sys/health", ...extra }, {});
const answer = (status: number, body: string) => ({ kind: "response" as const, status, body });

describe("uri planning", () => {
  it("is ok on an expected status and registers status, body and parsed JSON", () => {
    const plan = uriModule.plan(args({ json: true }), answer(200, '{"sealed":false}'), ctx);
    expect(plan).toMatchObject({ status: "ok", reason: "status 200", ops: [] });
    expect(plan.result).toEqual({
      status: 200,
      url: "https://127.0.0.1:8200/v1/sys/health",
      body: '{"sealed":false}',
      json: { sealed: false },
    });
  });

  it("fails on another status with the status, the expected ones and the body tail, still registering", () => {
    const plan = uriModule.plan(args({ status: [200, 429] }), answer(503, "sealed\n"), ctx);
    expect(plan.status).toBe("failed");
    expect(plan.reason).toBe(
      "GET https://127.0.0.1:8200/v1/sys/health: status 503, expected 200 or 429\n  body: sealed",
    );
    expect(plan.result?.status).toBe(503);
  });

  it("leaves the body out of the result with returnContent false, and reports curl failures", () => {
    expect(uriModule.plan(args({ returnContent: false }), answer(200, "x"), ctx).result).toEqual({
      status: 200,
      url: "https://127.0.0.1:8200/v1/sys/health",
    });
    const failed = uriModule.plan(args(), { kind: "error", detail: "exit code 7" }, ctx);
    expect(failed.reason).toBe("GET https://127.0.0.1:8200/v1/sys/health failed: exit code 7");
  });

  it("serialises an object body as JSON with its content type, and reveals Secret headers only to curl", () => {
    const valid = args({
      method: "POST",
      body: { a: 1 },
      headers: { "X-Vault-Token": new Secret("s3") },
    });
    expect(valid.body).toBe('{"a":1}');
    expect(valid.headers).toEqual([
      ["X-Vault-Token", "s3"],
      ["Content-Type", "application/json"],
    ]);
  });

  it("skips a request that may write when check mode did not send it", () => {
    const plan = uriModule.plan(args({ method: "POST" }), { kind: "not-sent" }, ctx);
    expect(plan).toMatchObject({ status: "skipped", ops: [] });
    expect(plan.reason).toContain("check mode: POST may change the server");
  });

  it("refuses a body on GET, a header with a newline, a bad status and a non-http URL", () => {
    expect(() => args({ body: "x" })).toThrow(/needs method POST, PUT, PATCH or DELETE/);
    expect(() => args({ headers: { A: "b\nc" } })).toThrow(/must be a one-line string/);
    expect(() => args({ status: 700 })).toThrow(/"status" must be an HTTP status/);
    expect(() => args({ url: "file:///etc/passwd" })).toThrow(/only http and https URLs/);
    expect(() => args({ method: "get" })).toThrow(/"method" must be one of "GET"/);
  });
});

describe("curl config", () => {
  it("quotes every value with curl's escapes", () => {
    expect(curlConfig([["url", 'http://x/"a"\\b'], ["silent"], ["data-raw", "l1\nl2\t"]])).toBe(
      'url = "http://x/\\"a\\"\\\\b"\nsilent\ndata-raw = "l1\\nl2\\t"\n',
    );
  });
});
