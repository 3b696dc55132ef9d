import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A tiny HTTPS server on loopback that answers OpenBao's KV v2 read API. */
export interface FakeBao {
  addr: string;
  /** The CA file (the server's own self-signed certificate) for BAO_CACERT. */
  caCert: string;
  token: string;
  /** Paths requested, e.g. "/v1/secret/data/omens/db". */
  requests: string[];
  close(): Promise<void>;
}

/** Starts the server with `secrets` as "<mount>/<path>" -> fields. */
export async function startFakeBao(
  secrets: Record<string, Record<string, string>>,
): Promise<FakeBao> {
  const dir = mkdtempSync(join(tmpdir(), "omens-bao-"));
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  const token = "hvs.test-token-0123456789";
  const requests: string[] = [];
  const server: Server = createServer(
    { key: readFileSync(key), cert: readFileSync(cert) },
    (req, res) => {
      requests.push(req.url ?? "");
      res.setHeader("content-type", "application/json");
      if (req.headers["x-vault-token"] !== token) {
        res.writeHead(403).end(JSON.stringify({ errors: ["permission denied"] }));
        return;
      }
      const match = /^\/v1\/([^/]+)\/data\/(.+)$/.exec(req.url ?? "");
      const data = match ? secrets[`${match[1]}/${match[2]}`] : undefined;
      if (!data) {
        res.writeHead(404).end(JSON.stringify({ errors: [] }));
        return;
      }
      const metadata = { created_time: "2026-12-04T00:00:00Z", version: 1, destroyed: false };
      res.writeHead(200).end(JSON.stringify({ request_id: "r1", data: { data, metadata } }));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    addr: `https://127.0.0.1:${port}`,
    caCert: cert,
    token,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
