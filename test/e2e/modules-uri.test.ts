import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  hashHostTree,
  hostPath,
  labInventory,
  omensPlay,
  results,
  ROOT,
  sshRoot,
} from "../helpers/lab.js";
import { playTasks } from "./modules-helpers.js";

const DIR = "/opt/omens-uri";
const PLAIN = "http://127.0.0.1:8280";
const TLS = "https://127.0.0.1:8443";
const request = (args: Record<string, unknown>, register = "r") => ({
  module: "uri",
  args: { register, ...args },
});
const expectRegistered = (path: string, equals: unknown) => ({
  module: "expectRegistered",
  args: { register: "r", path, equals },
});

describe("uri from a lab host to services on its own loopback", () => {
  beforeAll(() => {
    sshRoot("auth", `rm -rf ${DIR} /var/tmp/omens-echo-requests.log && mkdir -p ${DIR}`);
    copyFileSync(
      join(ROOT, "test/fixtures/modules/http-echo.py"),
      hostPath("auth", `${DIR}/echo.py`),
    );
    sshRoot(
      "auth",
      [
        `cd ${DIR}`,
        `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null`,
        `for u in omens-test-echo omens-test-echo-tls; do systemctl stop $u 2>/dev/null; systemctl reset-failed $u 2>/dev/null; done; true`,
        `systemd-run -q --unit omens-test-echo python3 ${DIR}/echo.py 8280`,
        `systemd-run -q --unit omens-test-echo-tls python3 ${DIR}/echo.py 8443 ${DIR}/cert.pem ${DIR}/key.pem`,
        `for i in $(seq 50); do curl -s -o /dev/null ${PLAIN}/ && curl -sk -o /dev/null ${TLS}/ && exit 0; sleep 0.1; done; exit 1`,
      ].join(" && "),
    );
  });
  afterAll(() => {
    sshRoot(
      "auth",
      `systemctl stop omens-test-echo omens-test-echo-tls; rm -rf ${DIR} /var/tmp/omens-echo-requests.log`,
    );
  });

  it("registers the status and the parsed JSON body, and reports ok, in check mode too", async () => {
    const tasks = [
      request({ url: `${PLAIN}/v1/sys/health`, json: true }),
      expectRegistered("status", 200),
      expectRegistered("json.path", "/v1/sys/health"),
      expectRegistered("json.method", "GET"),
    ];
    for (const flags of [[], ["--check"]]) {
      const before = hashHostTree("auth");
      const run = await playTasks(tasks, flags);
      expect(run.code, run.stdout).toBe(0);
      expect(run.results.map((r) => r.status)).toEqual(["ok", "ok", "ok", "ok"]);
      expect(run.results[0]?.reason).toBe("status 200");
      expect(hashHostTree("auth")).toBe(before);
    }
  });

  it("in check mode, skips a PUT without sending it, and sends it in a real run", async () => {
    const tasks = [request({ url: `${PLAIN}/v1/sys/unseal`, method: "PUT", body: { key: "k" } })];
    const check = await playTasks(tasks, ["--check"]);
    expect(check.code, check.stdout).toBe(0);
    expect(check.results[0]?.status).toBe("skipped");
    expect(check.results[0]?.reason).toContain("check mode: PUT may change the server");
    expect(sshRoot("auth", `cat /var/tmp/omens-echo-requests.log`)).not.toContain(
      "PUT /v1/sys/unseal",
    );
    const run = await playTasks(tasks);
    expect(run.results[0]?.status).toBe("ok");
    expect(sshRoot("auth", `cat /var/tmp/omens-echo-requests.log`)).toContain("PUT /v1/sys/unseal");
  });

  it("sends method, headers and a JSON body, with quotes and newlines intact", async () => {
    const body = { key: 'va"l\\ue', lines: "a\nb\tc" };
    const run = await playTasks([
      request({
        url: `${PLAIN}/echo`,
        method: "PUT",
        headers: { "X-Vault-Token": "t-1" },
        body,
        json: true,
      }),
      expectRegistered("json.method", "PUT"),
      expectRegistered("json.headers.X-Vault-Token", "t-1"),
      expectRegistered("json.headers.Content-Type", "application/json"),
      expectRegistered("json.body", JSON.stringify(body)),
    ]);
    expect(run.code, run.stdout).toBe(0);
    expect(run.results.map((r) => r.status)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
  });

  it("verifies an https server against caFile, and fails without it naming the cause", async () => {
    const good = await playTasks([
      request({ url: `${TLS}/ok`, caFile: `${DIR}/cert.pem`, bodyContains: '"path": "/ok"' }),
    ]);
    expect(good.results[0]?.status, good.stdout).toBe("ok");
    const bad = await playTasks([request({ url: `${TLS}/ok` })]);
    expect(bad.code).toBe(2);
    expect(bad.results[0]?.error).toContain(
      `GET ${TLS}/ok failed: exit code 60 (the server certificate is not trusted`,
    );
  });

  it("fails on a status outside the expected ones, with the status and the body tail; a list accepts it", async () => {
    const run = await playTasks([request({ url: `${PLAIN}/status/503`, status: [200, 429] })]);
    expect(run.code).toBe(2);
    expect(run.results[0]?.error).toMatch(
      new RegExp(
        `^GET ${PLAIN}/status/503: status 503, expected 200 or 429\n  body: status 503 from the echo server\n  \\(host auth, task "uri GET ${PLAIN}/status/503", at .*tasks-from-env\\.ts:\\d+:\\d+\\)$`,
      ),
    );
    const accepted = await playTasks([
      request({ url: `${PLAIN}/status/503`, status: [200, 503] }),
      expectRegistered("status", 503),
    ]);
    expect(accepted.results.map((r) => r.status)).toEqual(["ok", "ok"]);
  });

  it("fails when asked for JSON and the body is not JSON, or lacks bodyContains", async () => {
    const run = await playTasks([request({ url: `${PLAIN}/text`, json: true })]);
    expect(run.results[0]?.error).toContain("status 200, but the body is not JSON");
    const missing = await playTasks([request({ url: `${PLAIN}/text`, bodyContains: "sealed" })]);
    expect(missing.results[0]?.error).toContain('the body does not contain "sealed"');
  });

  it("sends a header computed at run time from an earlier task's output", async () => {
    sshRoot("auth", `echo tok-from-host-77 > ${DIR}/token`);
    const run = await omensPlay([
      "test/fixtures/modules/uri-deferred.ts",
      "-i",
      labInventory(),
      "--json",
      "-vvv",
    ]);
    expect(run.code, run.stdout).toBe(0);
    expect(results(run).map((r) => r.status)).toEqual(["ok", "ok", "ok"]);
  });

  it("keeps a noLog request's token and response out of the output at -vvv", async () => {
    const run = await playTasks(
      [
        request({
          url: `${PLAIN}/status/500`,
          headers: { "X-Vault-Token": "SEKRET-ROOT-TOKEN" },
          noLog: true,
        }),
      ],
      ["-vvv"],
    );
    expect(run.code).toBe(2);
    expect(run.stdout + run.stderr).not.toContain("SEKRET-ROOT-TOKEN");
    expect(run.stdout).not.toContain("from the echo server");
  });

  it("refuses a body on a GET, a bad status and an unknown method before contacting the host", async () => {
    const body = await playTasks([request({ url: `${PLAIN}/x`, body: "a" })]);
    expect(body.code).toBe(5);
    expect(body.stderr + body.stdout).toContain(`a "body" needs method POST, PUT, PATCH or DELETE`);
    const status = await playTasks([request({ url: `${PLAIN}/x`, status: "200" })]);
    expect(status.stderr + status.stdout).toContain(`"status" must be an HTTP status (100-599)`);
  });
});
