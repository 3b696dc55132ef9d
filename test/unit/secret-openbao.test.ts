import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OmensError } from "../../engine/errors.js";
import { maskSecrets, Secret } from "../../engine/secret.js";
import { startFakeBao, type FakeBao } from "../helpers/bao.js";

// Secret.fromOpenBao reads one field of a KV v2 secret over HTTPS (a real TLS server on
// loopback, checked against BAO_CACERT) and masks both the value and the token.
let bao: FakeBao;
const saved = { ...process.env };

function useBao(overrides: Record<string, string | undefined> = {}) {
  const env = { BAO_ADDR: bao.addr, BAO_TOKEN: bao.token, BAO_CACERT: bao.caCert, ...overrides };
  process.env = Object.fromEntries(
    Object.entries({ ...saved, ...env }).filter(([, v]) => v !== undefined),
  ) as NodeJS.ProcessEnv;
}

async function failure(path: string, field: string): Promise<OmensError> {
  const error = await Secret.fromOpenBao(path, field).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OmensError);
  return error as OmensError;
}

describe("Secret.fromOpenBao", () => {
  beforeAll(async () => {
    bao = await startFakeBao({ "secret/omens/db": { password: "bao-db-pass-4242", user: "app" } });
  });
  afterAll(async () => {
    process.env = saved;
    await bao.close();
  });

  it("reads a field of a KV v2 secret from /v1/<mount>/data/<path> and masks it", async () => {
    useBao();
    const secret = await Secret.fromOpenBao("secret/omens/db", "password");
    expect(secret.reveal()).toBe("bao-db-pass-4242");
    // This file is not the engine's: turning the Secret into text here is refused.
    expect(() => String(secret)).toThrow("is turned into text here");
    expect(JSON.stringify({ secret })).not.toContain("bao-db-pass-4242");
    expect(bao.requests.at(-1)).toBe("/v1/secret/data/omens/db");
    expect(maskSecrets(`pw=bao-db-pass-4242 token=${bao.token}`)).toBe(
      "pw=******** token=********",
    );
  });

  it("a wrong token is refused with HTTP 403, and the message never shows the token", async () => {
    useBao({ BAO_TOKEN: "hvs.wrong-token-9876" });
    const error = await failure("secret/omens/db", "password");
    expect(error.message).toContain("permission denied (HTTP 403)");
    expect(error.hint).toContain("BAO_TOKEN");
    expect(`${error.message} ${error.hint}`).not.toContain("hvs.wrong-token-9876");
  });

  it("a missing secret and a missing field are named", async () => {
    useBao();
    expect((await failure("secret/omens/nope", "password")).message).toContain(
      "no secret at secret/omens/nope",
    );
    expect((await failure("secret/omens/db", "pasword")).message).toBe(
      'secret secret/omens/db has no string field "pasword" (fields: password, user)',
    );
  });

  it("a server whose certificate does not chain to BAO_CACERT is refused", async () => {
    useBao({ BAO_CACERT: undefined });
    const error = await failure("secret/omens/db", "password");
    expect(error.message).toContain(`cannot reach OpenBao at ${bao.addr}`);
    expect(error.hint).toContain("BAO_CACERT");
  });

  it("an http:// address and a missing token are input errors before any request", async () => {
    const before = bao.requests.length;
    useBao({ BAO_ADDR: bao.addr.replace("https", "http") });
    expect((await failure("secret/omens/db", "password")).message).toContain("must be an https://");
    useBao({ BAO_TOKEN: undefined });
    expect((await failure("secret/omens/db", "password")).message).toContain(
      "BAO_TOKEN is not set",
    );
    expect(bao.requests.length).toBe(before);
  });

  it("an error names the playbook line that asked for the secret", async () => {
    useBao({ BAO_TOKEN: undefined });
    const error = await failure("secret/omens/db", "password");
    expect(error.where.file).toBe(fileURLToPath(import.meta.url));
    expect(error.where.line).toBe(THE_FAILURE_CALL);
  });
});

describe("Secret.fromEnv and Secret.fromFile", () => {
  it("a variable that is not set and a file that does not exist name the line that asked", () => {
    const asked = (read: () => Secret) => {
      try {
        read();
      } catch (error) {
        return error as OmensError;
      }
      throw new Error("expected the secret to be refused");
    };
    const env = asked(() => Secret.fromEnv("OMENS_TEST_NEVER_SET"));
    expect([env.code, env.message, env.where.file, env.where.line]).toEqual([
      "SECRET_ENV_MISSING",
      "environment variable OMENS_TEST_NEVER_SET is not set",
      fileURLToPath(import.meta.url),
      callLine('Secret.fromEnv("OMENS_TEST_NEVER_SET")'),
    ]);
    const file = asked(() => Secret.fromFile("/nonexistent/omens/token"));
    expect([file.code, file.message, file.where.line]).toEqual([
      "SECRET_FILE_MISSING",
      "secret file /nonexistent/omens/token does not exist",
      callLine('Secret.fromFile("/nonexistent/omens/token")'),
    ]);
  });
});

/** The line of this file that holds `text`. */
function callLine(text: string): number {
  const lines = readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n");
  return lines.findIndex((l) => l.includes(text)) + 1;
}

const THE_FAILURE_CALL = callLine("await Secret.fromOpenBao(path, field).then(");
