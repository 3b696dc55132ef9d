// The step-ca, step and bao stand-ins on real lab hosts, installed from the release tarballs the
// lab's artifact server serves (sha256-checked on the host): step-ca on ca, step on auth and
// spire, bao on spire behind a step-ca certificate, and a JWKS served by nginx over TLS.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import * as jose from "jose";
import { execFileSync } from "node:child_process";
import { webcrypto } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lab, ROOT, sshRun, type LabHost, sshOk, sshPut, waitUntil } from "../helpers/lab.js";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const PKI = "/etc/step-ca";
const CA_URL = "https://ca:9443";
const ROOT_CRT = "/etc/omens-test/root_ca.crt";
const C = `--ca-url ${CA_URL} --root ${ROOT_CRT}`;
const BAO = "BAO_ADDR=https://127.0.0.1:8200 BAO_CACERT=/etc/omens-test/root_ca.crt";
const SUB = "spiffe://funlab.casa/workload/openbao";

const sh = sshRun;

const ok = sshOk;
const put = sshPut;

const until = <T>(what: string, probe: () => T | undefined, seconds = 30) =>
  waitUntil(what, probe, seconds, 300);

/** Installs a release tarball from the lab's artifact server, checked against SHA256SUMS. */
function install(host: LabHost, tarball: string, binaries: Record<string, string>) {
  const base = (lab() as unknown as { artifacts: string | null }).artifacts;
  if (!base) throw new Error("lab.json has no artifacts URL: the lab runs without LAB_ARTIFACTS");
  const dir = `/opt/omens-test/${tarball.replace(/\.tar\.gz$/, "")}`;
  const links = Object.entries(binaries)
    .map(([name, inside]) => `ln -sf ${dir}/${inside} /usr/local/bin/${name}`)
    .join(" && ");
  ok(
    host,
    `set -e; cd /tmp; curl -fsS -o ${tarball} ${base}${tarball}; curl -fsS -o SHA256SUMS ${base}SHA256SUMS;` +
      ` grep " ${tarball}$" SHA256SUMS | sha256sum -c --quiet; rm -rf ${dir}; mkdir -p ${dir};` +
      ` tar -xzf ${tarball} -C ${dir}; ${links}`,
  );
}

/** A transient systemd service, restarted fresh each time. */
function runUnit(host: LabHost, unit: string, command: string) {
  sh(host, `systemctl stop ${unit} 2>/dev/null; systemctl reset-failed ${unit} 2>/dev/null`);
  ok(host, `systemd-run --quiet --unit=${unit} ${command}`);
}

function stopUnit(host: LabHost, unit: string) {
  sh(host, `systemctl stop ${unit} 2>/dev/null; systemctl reset-failed ${unit} 2>/dev/null`);
}

function certs(pem: string): x509.X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (b) => new x509.X509Certificate(b),
  );
}

const UNITS: [LabHost, string][] = [
  ["ca", "omens-step-ca"],
  ["spire", "omens-bao"],
  ["spire", "omens-jwks"],
];

let caJson: Record<string, unknown>;

beforeAll(() => {
  execFileSync("npx", ["tsx", "test/standins/build.ts"], { cwd: ROOT, stdio: "pipe" });
  install("ca", "step-ca_linux_0.28.1_amd64.tar.gz", { "step-ca": "step-ca_0.28.1/bin/step-ca" });
  for (const h of ["ca", "auth", "spire"] as const)
    install(h, "step_linux_0.28.1_amd64.tar.gz", { step: "step_0.28.1/bin/step" });
  install("spire", "bao_2.5.0_linux_amd64.tar.gz", { bao: "bao" });
  for (const [h, u] of UNITS) stopUnit(h, u);
  // A root and an intermediate (key encrypted) made with openssl, as an offline ceremony would.
  ok(
    "ca",
    [
      `set -e; rm -rf ${PKI}; mkdir -p ${PKI}/certs ${PKI}/secrets ${PKI}/config; cd ${PKI}`,
      "openssl ecparam -name prime256v1 -genkey -noout -out secrets/root_ca_key",
      `openssl req -x509 -new -key secrets/root_ca_key -subj "/CN=Omens Lab Root CA" -days 3650 -addext basicConstraints=critical,CA:TRUE,pathlen:1 -addext keyUsage=critical,keyCertSign,cRLSign -out certs/root_ca.crt`,
      "openssl ecparam -name prime256v1 -genkey -noout -out /tmp/int.key",
      "echo intermediate-pass > secrets/intermediate_password",
      "openssl pkcs8 -topk8 -in /tmp/int.key -passout file:secrets/intermediate_password -out secrets/intermediate_ca_key",
      `openssl req -new -key /tmp/int.key -subj "/CN=Omens Lab Intermediate CA" -out /tmp/int.csr`,
      "printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > /tmp/int.ext",
      "openssl x509 -req -in /tmp/int.csr -CA certs/root_ca.crt -CAkey secrets/root_ca_key -CAcreateserial -days 1825 -extfile /tmp/int.ext -out certs/intermediate_ca.crt",
      "rm -f /tmp/int.key",
      "echo provisioner-pass > secrets/provisioner_password",
      "step crypto jwk create /tmp/tpm-devid.pub.json /tmp/tpm-devid.priv.json --password-file secrets/provisioner_password --force",
    ].join("\n"),
  );
  const pub = JSON.parse(ok("ca", "cat /tmp/tpm-devid.pub.json")) as Record<string, string>;
  const priv = JSON.parse(ok("ca", "cat /tmp/tpm-devid.priv.json")) as Record<string, string>;
  caJson = {
    root: `${PKI}/certs/root_ca.crt`,
    federatedRoots: [],
    crt: `${PKI}/certs/intermediate_ca.crt`,
    key: `${PKI}/secrets/intermediate_ca_key`,
    address: ":9443",
    insecureAddress: "",
    dnsNames: ["ca", "ca.lab", "localhost"],
    logger: { format: "text" },
    db: { type: "badgerv2", dataSource: `${PKI}/db` },
    authority: {
      provisioners: [
        {
          type: "JWK",
          name: "tpm-devid",
          key: pub,
          encryptedKey: [
            priv.protected,
            priv.encrypted_key,
            priv.iv,
            priv.ciphertext,
            priv.tag,
          ].join("."),
          claims: { defaultTLSCertDuration: "2160h", maxTLSCertDuration: "2160h" },
        },
      ],
    },
    tls: { minVersion: 1.2, maxVersion: 1.3 },
  };
  put("ca", `${PKI}/config/ca.json`, JSON.stringify(caJson, null, 2));
  runUnit(
    "ca",
    "omens-step-ca",
    `/usr/local/bin/step-ca ${PKI}/config/ca.json --password-file ${PKI}/secrets/intermediate_password`,
  );
  const rootPem = ok("ca", `cat ${PKI}/certs/root_ca.crt`);
  for (const h of ["ca", "auth", "spire"] as const) put(h, ROOT_CRT, rootPem);
  for (const h of ["auth", "spire"] as const)
    put(h, "/etc/omens-test/provisioner_password", "provisioner-pass\n", "0600");
  // The DevID-like request the signing tests use: an openssl key and CSR on auth.
  ok(
    "auth",
    [
      "set -e; mkdir -p /tmp/devid; cd /tmp/devid; rm -f devid.crt",
      "openssl ecparam -name prime256v1 -genkey -noout -out devid.key",
      "openssl req -new -key devid.key -subj /CN=auth.funlab.casa -addext subjectAltName=DNS:auth.funlab.casa -out devid.csr",
    ].join("\n"),
  );
}, 240_000);

afterAll(() => {
  for (const [h, u] of UNITS) stopUnit(h, u);
});

describe("step-ca stand-in", () => {
  const variant = (host: LabHost, name: string, edit: (c: Record<string, unknown>) => void) => {
    const c = structuredClone(caJson);
    edit(c);
    put(host, `/tmp/${name}.json`, JSON.stringify(c));
    return sh(
      host,
      `timeout 10 step-ca /tmp/${name}.json --password-file ${PKI}/secrets/intermediate_password`,
    );
  };

  it("rejects unknown and missing ca.json keys, and a YubiKey key with a clear reason", () => {
    const unknown = variant(
      "ca",
      "unknown",
      (c) => ((c.authority as Record<string, unknown>).provisionrs = []),
    );
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('/tmp/unknown.json: authority: unknown key "provisionrs"');
    const missing = variant("ca", "missing", (c) => delete c.address);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('missing required key "address"');
    const claim = variant("ca", "claim", (c) => {
      const p = (c.authority as { provisioners: { claims: Record<string, string> }[] })
        .provisioners[0]!;
      p.claims.maxTLSCertDuration = "90d";
    });
    expect(claim.err).toContain('invalid duration "90d"');
    const yubikey = variant("ca", "yubikey", (c) => {
      c.key = "yubikey:slot-id=9c";
      c.kms = { type: "yubikey", pin: "123456" };
    });
    expect(yubikey.code).toBe(1);
    expect(yubikey.err).toContain('key "yubikey:slot-id=9c" (kms yubikey) needs a YubiKey build');
    const noPassword = sh("ca", `timeout 10 step-ca ${PKI}/config/ca.json`);
    expect(noPassword.err).toContain("is encrypted: pass --password-file");
  });

  it("serves /health and /roots over TLS with a certificate from its intermediate", async () => {
    const health = await until("step ca health", () => {
      const r = sh("auth", `step ca health ${C}`);
      return r.code === 0 ? r.out : undefined;
    });
    expect(health).toBe("ok\n");
    const roots = JSON.parse(ok("auth", `curl -fsS --cacert ${ROOT_CRT} ${CA_URL}/roots`)) as {
      crts: string[];
    };
    expect(roots.crts).toHaveLength(1);
    const served = ok(
      "auth",
      `openssl s_client -connect ca:9443 -servername ca -showcerts </dev/null 2>/dev/null`,
    );
    const [tlsLeaf, tlsIssuer] = certs(served);
    expect(tlsLeaf!.issuer).toBe("CN=Omens Lab Intermediate CA");
    expect(tlsIssuer!.subject).toBe("CN=Omens Lab Intermediate CA");
    expect(sh("auth", `curl -fsS ${CA_URL}/health`).code).not.toBe(0); // not in the system roots
  });

  it("signs an openssl CSR with the tpm-devid JWK provisioner: leaf + intermediate, 2160h, chains to the root", async () => {
    const r = sh(
      "auth",
      `step ca sign /tmp/devid/devid.csr /tmp/devid/devid.crt --provisioner tpm-devid --provisioner-password-file /etc/omens-test/provisioner_password ${C}`,
    );
    expect(r.code, r.err).toBe(0);
    const [leaf, inter, ...rest] = certs(ok("auth", "cat /tmp/devid/devid.crt"));
    expect(rest).toHaveLength(0);
    const root = certs(ok("auth", `cat ${ROOT_CRT}`))[0]!;
    expect(leaf!.subject).toBe("CN=auth.funlab.casa");
    const san = leaf!.getExtension(x509.SubjectAlternativeNameExtension)!;
    expect(san.names.items.map((n) => `${n.type}:${n.value}`)).toEqual(["dns:auth.funlab.casa"]);
    const hours = (leaf!.notAfter.getTime() - Date.now()) / 36e5;
    expect(hours).toBeGreaterThan(2159);
    expect(hours).toBeLessThanOrEqual(2160);
    const chain = await new x509.X509ChainBuilder({ certificates: [inter!, root] }).build(leaf!);
    expect(chain.map((c) => c.subject)).toEqual([
      "CN=auth.funlab.casa",
      "CN=Omens Lab Intermediate CA",
      "CN=Omens Lab Root CA",
    ]);
    expect(await leaf!.verify({ publicKey: inter!.publicKey })).toBe(true);
    expect(await inter!.verify({ publicKey: root.publicKey })).toBe(true);
    const keyPub = ok("auth", "openssl ec -in /tmp/devid/devid.key -pubout 2>/dev/null");
    const spki = keyPub.replace(/-----[A-Z ]+-----/g, "").replace(/\s/g, "");
    expect(Buffer.from(leaf!.publicKey.rawData).toString("base64")).toBe(spki);
  });

  it("refuses a used token, a subject that is not the CSR CN, a wrong password and a foreign key", async () => {
    const token = ok(
      "auth",
      `step ca token auth.funlab.casa --provisioner tpm-devid --password-file /etc/omens-test/provisioner_password ${C}`,
    ).trim();
    const signWith = (t: string, out: string) =>
      sh("auth", `step ca sign /tmp/devid/devid.csr /tmp/devid/${out} --token ${t} ${C} --force`);
    expect(signWith(token, "t1.crt").code).toBe(0);
    const reused = signWith(token, "t2.crt");
    expect(reused.code).toBe(1);
    expect(reused.err).toContain("The request lacked necessary authorization to be completed");
    expect(ok("ca", "journalctl -u omens-step-ca --no-pager -o cat")).toContain(
      "token already used",
    );

    const other = ok(
      "auth",
      `step ca token other.funlab.casa --provisioner tpm-devid --password-file /etc/omens-test/provisioner_password ${C}`,
    ).trim();
    const mismatch = signWith(other, "t3.crt");
    expect(mismatch.code).toBe(1);
    expect(mismatch.err).toContain(
      "The request was forbidden by the certificate authority: certificate request does not contain the valid common name - got auth.funlab.casa, want other.funlab.casa",
    );

    put("auth", "/tmp/devid/wrong_password", "not-the-password\n", "0600");
    const wrongPw = sh(
      "auth",
      `step ca sign /tmp/devid/devid.csr /tmp/devid/t4.crt --provisioner tpm-devid --provisioner-password-file /tmp/devid/wrong_password ${C}`,
    );
    expect(wrongPw.code).toBe(1);
    expect(wrongPw.err).toContain("error decrypting provisioner key");
    const wrongProv = sh(
      "auth",
      `step ca sign /tmp/devid/devid.csr /tmp/devid/t6.crt --provisioner devid --provisioner-password-file /etc/omens-test/provisioner_password ${C}`,
    );
    expect(wrongProv.code).toBe(1);
    expect(wrongProv.err).toContain("provisioner 'devid' not found");

    // Right kid and claims, signed by a key that is not the provisioner's: HTTP 401.
    const pub = (caJson.authority as { provisioners: { key: { kid: string } }[] }).provisioners[0]!;
    const { privateKey } = await jose.generateKeyPair("ES256");
    const forged = await new jose.SignJWT({ sans: ["auth.funlab.casa"] })
      .setProtectedHeader({ alg: "ES256", kid: pub.key.kid, typ: "JWT" })
      .setIssuer("tpm-devid")
      .setSubject("auth.funlab.casa")
      .setAudience(`${CA_URL}/1.0/sign`)
      .setIssuedAt()
      .setNotBefore("0s")
      .setExpirationTime("5m")
      .setJti("forged-1")
      .sign(privateKey);
    const csr = ok("auth", "cat /tmp/devid/devid.csr");
    const reply = ok(
      "auth",
      `curl -sS -o - -w '\\n%{http_code}' --cacert ${ROOT_CRT} -H 'Content-Type: application/json' --data-binary @- ${CA_URL}/1.0/sign`,
      JSON.stringify({ csr, ott: forged }),
    ).split("\n");
    expect(reply.at(-1)).toBe("401");
    expect(JSON.parse(reply[0]!)).toEqual({
      status: 401,
      message:
        "The request lacked necessary authorization to be completed. Please see the certificate authority logs for more info.",
    });

    const tooLong = sh(
      "auth",
      `step ca sign /tmp/devid/devid.csr /tmp/devid/t5.crt --provisioner tpm-devid --provisioner-password-file /etc/omens-test/provisioner_password ${C} --not-after 3000h`,
    );
    expect(tooLong.err).toContain(
      "more than the authorized maximum certificate duration of 2160h0m0s",
    );
  });

  it("step certificate needs-renewal answers with the real exit codes", () => {
    ok(
      "auth",
      `step ca sign /tmp/devid/devid.csr /tmp/devid/nr.crt --provisioner tpm-devid --provisioner-password-file /etc/omens-test/provisioner_password ${C} --force`,
    );
    const code = (args: string) => sh("auth", `step certificate needs-renewal ${args}`).code;
    expect(code("/tmp/devid/nr.crt --expires-in 720h")).toBe(1);
    expect(code("/tmp/devid/nr.crt --expires-in 2200h")).toBe(0);
    expect(code("/tmp/devid/nr.crt")).toBe(1); // 66% of the lifetime not used yet
    expect(code("/tmp/devid/nr.crt --expires-in 0%")).toBe(0);
    expect(code("/tmp/devid/missing.crt --expires-in 720h")).toBe(2);
    expect(code("/tmp/devid/devid.csr --expires-in 720h")).toBe(255);
  });

  it("lists the provisioners as JSON", () => {
    const list = JSON.parse(ok("auth", `step ca provisioner list ${C}`)) as {
      name: string;
      type: string;
    }[];
    expect(list.map((p) => `${p.type}/${p.name}`)).toEqual(["JWK/tpm-devid"]);
  });
});

describe("bao stand-in", () => {
  const hcl = (over: { extraTop?: string; extraListener?: string; clusterAddr?: boolean } = {}) =>
    [
      'ui = false\nlog_level = "info"\ncluster_name = "omens-lab"',
      'api_addr = "https://spire:8200"',
      over.clusterAddr === false ? "" : 'cluster_addr = "https://spire:8201"',
      over.extraTop ?? "",
      'storage "raft" {\n  path = "/var/lib/omens-bao"\n  node_id = "spire"\n}',
      'listener "tcp" {\n  address = "0.0.0.0:8200"\n  cluster_address = "0.0.0.0:8201"',
      '  tls_cert_file = "/etc/omens-test/bao/tls.crt"\n  tls_key_file = "/etc/omens-test/bao/tls.key"',
      `  tls_min_version = "tls12"\n${over.extraListener ?? ""}}`,
    ].join("\n");
  const bao = (args: string, token?: string) =>
    sh("spire", `${BAO}${token ? ` BAO_TOKEN=${token}` : ""} bao ${args}`);
  // curl prints 000 (and exits 7) while nothing listens yet.
  const health = () =>
    sh(
      "spire",
      `curl -s -o /dev/null -w '%{http_code}' --cacert ${ROOT_CRT} https://127.0.0.1:8200/v1/sys/health`,
    ).out;
  let init: { unseal_keys_b64: string[]; unseal_keys_hex: string[]; root_token: string };
  let signer: CryptoKey;
  let other: CryptoKey;

  beforeAll(async () => {
    // bao's TLS certificate and the JWKS server's come from the step-ca stand-in.
    ok(
      "spire",
      [
        "set -e; rm -rf /var/lib/omens-bao /etc/omens-test/bao; mkdir -p /var/lib/omens-bao /etc/omens-test/bao; cd /etc/omens-test/bao",
        "openssl ecparam -name prime256v1 -genkey -noout -out tls.key",
        "openssl req -new -key tls.key -subj /CN=spire -addext subjectAltName=DNS:spire,IP:127.0.0.1 -out tls.csr",
        `step ca sign tls.csr tls.crt --provisioner tpm-devid --provisioner-password-file /etc/omens-test/provisioner_password ${C} --not-after 24h`,
      ].join("\n"),
    );
    const keys = await jose.generateKeyPair("ES256", { extractable: true });
    signer = keys.privateKey;
    other = (await jose.generateKeyPair("ES256")).privateKey;
    const jwk = {
      ...(await jose.exportJWK(keys.publicKey)),
      kid: "spire-jwt-1",
      use: "jwt-svid",
      alg: "ES256",
    };
    put("spire", "/etc/omens-test/jwks/keys", JSON.stringify({ keys: [jwk] }));
    put(
      "spire",
      "/etc/omens-test/jwks/nginx.conf",
      [
        "pid /run/omens-jwks.pid;\nerror_log stderr;\nevents {}\nhttp {",
        "  access_log off;\n  client_body_temp_path /tmp/jwks-body;\n  proxy_temp_path /tmp/jwks-proxy;",
        "  fastcgi_temp_path /tmp/jwks-fcgi;\n  uwsgi_temp_path /tmp/jwks-uwsgi;\n  scgi_temp_path /tmp/jwks-scgi;",
        "  server {\n    listen 8444 ssl;\n    server_name spire;",
        "    ssl_certificate /etc/omens-test/bao/tls.crt;\n    ssl_certificate_key /etc/omens-test/bao/tls.key;",
        "    location = /keys { root /etc/omens-test/jwks; default_type application/json; }",
        "    location / { return 404; }\n  }\n}",
      ].join("\n"),
    );
    runUnit(
      "spire",
      "omens-jwks",
      "/usr/sbin/nginx -c /etc/omens-test/jwks/nginx.conf -g 'daemon off;'",
    );
    put("spire", "/etc/omens-test/bao/bao.hcl", hcl());
  }, 120_000);

  const jwt = (aud: string, key: CryptoKey, sub = SUB) =>
    new jose.SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: "spire-jwt-1", typ: "JWT" })
      .setIssuer("https://spire.funlab.casa")
      .setSubject(sub)
      .setAudience(aud)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(key);

  it("rejects unknown keys, raft without cluster_addr, and unknown listener keys", () => {
    const check = (name: string, text: string) => {
      put("spire", `/tmp/${name}.hcl`, text);
      return sh("spire", `timeout 10 bao server -config=/tmp/${name}.hcl`);
    };
    const a = check("unknown", hcl({ extraTop: "disable_mlok = true" }));
    expect(a.code).toBe(1);
    expect(a.err).toContain(
      'error loading configuration from /tmp/unknown.hcl: top level: unknown key "disable_mlok"',
    );
    const b = check("nocluster", hcl({ clusterAddr: false }));
    expect(b.err).toContain("Cluster address must be set when using raft storage");
    const c = check("listener", hcl({ extraListener: '  tls_cert = "x"\n' }));
    expect(c.err).toContain('listener "tcp": unknown key "tls_cert"');
    const d = check("syntax", 'storage "raft" {\n  path = \n}');
    expect(d.err).toContain("HCL syntax error");
  });

  it("health 501 uninitialised, init once, 503 sealed, 200 unsealed, sealed again after a restart", async () => {
    runUnit("spire", "omens-bao", "/usr/local/bin/bao server -config=/etc/omens-test/bao/bao.hcl");
    expect(
      await until("bao listening", () => (["501"].includes(health()) ? "501" : undefined)),
    ).toBe("501");
    const st = bao("status -format=json");
    expect(st.code).toBe(2);
    expect(JSON.parse(st.out)).toMatchObject({
      initialized: false,
      sealed: true,
      storage_type: "raft",
    });
    const first = bao("operator init -key-shares=1 -key-threshold=1 -format=json");
    expect(first.code, first.err).toBe(0);
    init = JSON.parse(first.out) as typeof init;
    expect(init.unseal_keys_b64).toHaveLength(1);
    const second = bao("operator init -key-shares=1 -key-threshold=1 -format=json");
    expect(second.code).toBe(2);
    expect(second.err).toContain("* Vault is already initialized");
    expect(health()).toBe("503");
    expect(bao(`operator unseal ${Buffer.alloc(32, 7).toString("base64")}`).code).toBe(2);
    expect(health()).toBe("503");
    expect(bao(`operator unseal ${init.unseal_keys_b64[0]}`).code).toBe(0);
    expect(health()).toBe("200");
    expect(JSON.parse(bao("status -format=json").out)).toMatchObject({
      initialized: true,
      sealed: false,
    });
    const state = ok(
      "spire",
      "ls -l /var/lib/omens-bao; cat /var/lib/omens-bao/standin-bao-state.json",
    );
    expect(state).not.toContain(init.root_token);
    expect(state).not.toContain(init.unseal_keys_b64[0]);

    ok("spire", "systemctl restart omens-bao");
    expect(
      await until("sealed after restart", () => (health() === "503" ? "503" : undefined)),
    ).toBe("503");
    expect(bao("status -format=json").code).toBe(2);
    expect(bao(`operator unseal ${init.unseal_keys_hex[0]}`).code).toBe(0);
    expect(health()).toBe("200");
    expect(
      ok(
        "spire",
        `curl -s -o /dev/null -w '%{http_code}' --cacert ${ROOT_CRT} 'https://127.0.0.1:8200/v1/sys/health?sealedcode=200'`,
      ),
    ).toBe("200");
  });

  it("jwt auth: the JWKS is fetched over verified TLS at config time; logins are checked", async () => {
    const root = init.root_token;
    expect(bao("auth enable jwt").code).toBe(2); // no token
    expect(bao("auth enable jwt", root).out).toContain("Success! Enabled jwt auth method at: jwt/");
    expect(bao("auth enable jwt", root).err).toContain("path is already in use at jwt/");
    expect(Object.keys(JSON.parse(bao("auth list -format=json", root).out) as object)).toContain(
      "jwt/",
    );

    // The EK CA is not the CA of nginx's certificate: the config is refused.
    const info = lab();
    put("spire", "/tmp/wrong-ca.pem", execFileSync("cat", [info.tpmCa.root], { encoding: "utf8" }));
    const wrongCa = bao(
      "write auth/jwt/config jwks_url=https://spire:8444/keys jwks_ca_pem=@/tmp/wrong-ca.pem",
      root,
    );
    expect(wrongCa.code).toBe(2);
    expect(wrongCa.err).toContain("error checking jwks URL");
    const noServer = bao(
      `write auth/jwt/config jwks_url=https://spire:8445/keys jwks_ca_pem=@${ROOT_CRT}`,
      root,
    );
    expect(noServer.err).toContain("error checking jwks URL");
    const good = bao(
      `write auth/jwt/config jwks_url=https://spire:8444/keys jwks_ca_pem=@${ROOT_CRT} bound_issuer=https://spire.funlab.casa`,
      root,
    );
    expect(good.code, good.err).toBe(0);
    const cfg = JSON.parse(bao("read -format=json auth/jwt/config", root).out) as {
      data: Record<string, string>;
    };
    expect(cfg.data.jwks_url).toBe("https://spire:8444/keys");
    expect(cfg.data.jwks_ca_pem!.trim()).toBe(ok("spire", `cat ${ROOT_CRT}`).trim());

    expect(bao("write auth/jwt/role/w user_claim=sub bound_audiences=openbao", root).err).toContain(
      "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.",
    );
    expect(bao("write auth/jwt/role/w role_type=jwt user_claim=sub", root).err).toContain(
      "must have at least one bound constraint",
    );
    const role = bao(
      `write auth/jwt/role/spire-workload role_type=jwt user_claim=sub bound_audiences=openbao bound_subject=${SUB} token_policies=spire-workload-policy token_ttl=1h`,
      root,
    );
    expect(role.code, role.err).toBe(0);
    const read = JSON.parse(bao("read -format=json auth/jwt/role/spire-workload", root).out) as {
      data: Record<string, unknown>;
    };
    expect(read.data).toMatchObject({
      role_type: "jwt",
      bound_audiences: ["openbao"],
      token_ttl: 3600,
    });

    put("spire", "/tmp/policy.hcl", 'path "secret/data/spire/*" {\n  capabilities = ["read"]\n}\n');
    expect(bao("policy write spire-workload-policy /tmp/policy.hcl", root).code).toBe(0);
    expect(bao("policy read spire-workload-policy", root).out).toBe(
      ok("spire", "cat /tmp/policy.hcl"),
    );
    put("spire", "/tmp/bad-policy.hcl", 'path "x" {\n  capabilities = ["reed"]\n}\n');
    expect(bao("policy write bad /tmp/bad-policy.hcl", root).err).toContain(
      'invalid capability "reed"',
    );

    const login = bao(
      `write -format=json auth/jwt/login role=spire-workload jwt=${await jwt("openbao", signer)}`,
    );
    expect(login.code, login.err).toBe(0);
    const auth = (
      JSON.parse(login.out) as {
        auth: { client_token: string; policies: string[]; lease_duration: number };
      }
    ).auth;
    expect(auth.policies).toEqual(["default", "spire-workload-policy"]);
    expect(auth.lease_duration).toBe(3600);
    const self = JSON.parse(bao("token lookup -format=json", auth.client_token).out) as {
      data: { policies: string[] };
    };
    expect(self.data.policies).toEqual(["default", "spire-workload-policy"]);
    expect(bao("policy write x /tmp/policy.hcl", auth.client_token).err).toContain(
      "permission denied",
    );

    const wrongAud = bao(
      `write auth/jwt/login role=spire-workload jwt=${await jwt("other", signer)}`,
    );
    expect(wrongAud.code).toBe(2);
    expect(wrongAud.err).toContain("aud claim does not match any bound audience");
    const wrongKey = bao(
      `write auth/jwt/login role=spire-workload jwt=${await jwt("openbao", other)}`,
    );
    expect(wrongKey.err).toContain("failed to verify id token signature");
    const wrongSub = bao(
      `write auth/jwt/login role=spire-workload jwt=${await jwt("openbao", signer, "spiffe://funlab.casa/x")}`,
    );
    expect(wrongSub.err).toContain("sub claim does not match bound subject");
  });
});
