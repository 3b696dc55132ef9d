// The SPIRE stand-ins on real lab hosts: the server on spire, the agent on auth, both as systemd
// units, with auth's swtpm for tpm_devid attestation. The binaries are bundled here the way the
// release build does it (esbuild, node18, one file each) and copied in over SSH.
import { build } from "esbuild";
import { createPublicKey, verify } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lab, ROOT, sshRun, type LabHost, sshOk, sshPut, waitUntil } from "../helpers/lab.js";

const TD = "funlab.casa";
const SERVER_SOCK = "/run/spire/server/api.sock";
const AGENT_SOCK = "/run/spire/agent/public/api.sock";
const S = `-socketPath ${SERVER_SOCK}`;
const APP_USER = "omensapp";
const DEVID = "/etc/spire/agent/devid";
const CLEAN =
  "systemctl stop spire-server spire-agent 2>/dev/null; systemctl reset-failed 2>/dev/null; rm -rf /etc/spire /var/lib/spire /run/spire /etc/systemd/system/spire-*.service; systemctl daemon-reload";

const sh = sshRun;

const ok = sshOk;
const put = sshPut;

const until = <T>(what: string, probe: () => T | undefined, seconds = 30) =>
  waitUntil(what, probe, seconds, 500);

/** Journal lines of a unit's current invocation. */
function journal(host: LabHost, unit: string): string {
  return ok(
    host,
    `journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$(systemctl show -p InvocationID --value ${unit})"`,
  );
}

/** Waits for `text` in the journal of a unit's current invocation (journald may lag a little). */
function journalHas(host: LabHost, unit: string, text: string) {
  return until(`"${text}" in ${unit}'s journal`, () =>
    journal(host, unit).includes(text) ? true : undefined,
  );
}

function serverConf(devidCa: string): string {
  return `server {
  trust_domain = "${TD}"
  bind_address = "0.0.0.0"
  bind_port = 8081
  socket_path = "${SERVER_SOCK}"
  data_dir = "/var/lib/spire/server"
  log_level = "INFO"
  ca_ttl = "24h"
  ca_subject {
    country = ["US"]
    organization = ["funlab"]
    common_name = "funlab.casa lab CA"
  }
  default_x509_svid_ttl = "1h"
  default_jwt_svid_ttl = "5m"
  jwt_issuer = "https://spire.funlab.casa"
  federation {
    bundle_endpoint {
      address = "0.0.0.0"
      port = 8443
      profile "https_spiffe" {}
    }
  }
}

plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "/var/lib/spire/server/datastore.sqlite3"
    }
  }
  KeyManager "disk" {
    plugin_data {
      keys_path = "/var/lib/spire/server/keys.json"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  NodeAttestor "tpm_devid" {
    plugin_data {
      devid_ca_path = "${devidCa}"
      endorsement_ca_path = "/etc/spire/server/ek-ca.pem"
    }
  }
}

health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = "8080"
  live_path = "/live"
  ready_path = "/ready"
}
`;
}

function agentConf(attestor: "join_token" | "tpm_devid", dataDir = "/var/lib/spire/agent"): string {
  const na =
    attestor === "join_token"
      ? `NodeAttestor "join_token" {
    plugin_data {}
  }`
      : `NodeAttestor "tpm_devid" {
    plugin_data {
      devid_cert_path = "${DEVID}/devid.crt"
      devid_priv_path = "${DEVID}/devid.priv.blob"
      devid_pub_path = "${DEVID}/devid.pub.blob"
    }
  }`;
  return `agent {
  trust_domain = "${TD}"
  server_address = "spire"
  server_port = 8081
  socket_path = "${dataDir === "/var/lib/spire/agent" ? AGENT_SOCK : `${dataDir}/api.sock`}"
  data_dir = "${dataDir}"
  log_level = "INFO"
  trust_bundle_path = "/etc/spire/agent/bundle.pem"
  trust_bundle_format = "pem"
${attestor === "join_token" ? `  join_token_file = "/etc/spire/agent/join_token"\n` : ""}}

plugins {
  ${na}
  KeyManager "disk" {
    plugin_data {
      directory = "${dataDir}"
    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}

health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = "8088"
}
`;
}

const UNIT = (what: string, extra = "") => `[Unit]
Description=SPIRE ${what} (stand-in test)
[Service]
Type=simple
${extra}ExecStart=/usr/local/bin/spire-${what} run -config /etc/spire/${what}/${what}.conf
Restart=on-failure
RestartSec=2
`;

// A DevID exactly as the domain reference's section 2 makes it, certified by a test CA (openssl).
const MAKE_DEVID = `set -e
D=${DEVID}; rm -rf $D /root/devid-ca; mkdir -p $D /root/devid-ca; cd /root/devid-ca
tpm2_flushcontext -t
tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' -c srk.ctx
tpm2_flushcontext -t
tpm2_create -Q -C srk.ctx -G ecc256:ecdsa-sha256 -g sha256 -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign' -u devid.tpm2b.pub -r devid.tpm2b.priv
tpm2_flushcontext -t
tpm2_load -Q -C srk.ctx -u devid.tpm2b.pub -r devid.tpm2b.priv -c devid.ctx
tpm2_flushcontext -t
tpm2_readpublic -Q -c devid.ctx -f tpmt -o $D/devid.pub.blob
tpm2_flushcontext -t
tail -c +3 devid.tpm2b.priv > $D/devid.priv.blob
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -subj "/CN=Lab DevID Root" -days 2 -out ca.crt -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
openssl ecparam -name prime256v1 -genkey -noout -out other.key
openssl req -x509 -new -key other.key -subj "/CN=Unrelated Root" -days 2 -out other.crt
tpm2_evictcontrol -Q -C o -c devid.ctx 0x81010002
tpm2_flushcontext -t
openssl req -new -provider tpm2 -provider default -key handle:0x81010002 -subj "/CN=auth.funlab.casa" -out devid.csr
tpm2_evictcontrol -Q -C o -c 0x81010002
openssl x509 -req -in devid.csr -CA ca.crt -CAkey ca.key -days 1 -out $D/devid.crt
`;

describe("SPIRE stand-ins on lab hosts", () => {
  let uid = 0;
  let token = "";
  let bundlePem = "";

  beforeAll(async () => {
    const out = mkdtempSync(join(tmpdir(), "omens-spire-"));
    for (const bin of ["spire-server", "spire-agent"]) {
      await build({
        entryPoints: [join(ROOT, `test/standins/src/${bin}/main.ts`)],
        bundle: true,
        platform: "node",
        target: "node18",
        format: "cjs",
        banner: { js: "#!/usr/bin/env node" },
        outfile: join(out, bin),
        logLevel: "warning",
      });
    }
    for (const host of ["spire", "auth"] as const) {
      ok(host, CLEAN);
      for (const bin of ["spire-server", "spire-agent"])
        put(host, `/usr/local/bin/${bin}`, readFileSync(join(out, bin), "utf8"), "0755");
    }
    ok("auth", `id -u ${APP_USER} >/dev/null 2>&1 || useradd --system ${APP_USER}`);
    uid = Number(ok("auth", `id -u ${APP_USER}`).trim());
    // The CSR is made by tpm2-openssl from the DevID at a persistent handle: free it first.
    sh("auth", "tpm2_evictcontrol -C o -c 0x81010002 >/dev/null 2>&1; true");
    ok("auth", MAKE_DEVID);
    put("spire", "/etc/spire/server/devid-ca.pem", ok("auth", "cat /root/devid-ca/ca.crt"));
    put("spire", "/etc/spire/server/other-ca.pem", ok("auth", "cat /root/devid-ca/other.crt"));
    put("spire", "/etc/spire/server/ek-ca.pem", readFileSync(lab().tpmCa.issuer, "utf8"));
  });

  // Leave the hosts as the test found them: no units, configs, data, binaries or DevID.
  afterAll(() => {
    for (const host of ["spire", "auth"] as const)
      sh(
        host,
        `${CLEAN}; rm -f /usr/local/bin/spire-server /usr/local/bin/spire-agent /tmp/svid-app/*`,
      );
    sh("auth", `rm -rf /root/devid-ca; userdel ${APP_USER} 2>/dev/null; true`);
  });

  it("rejects unknown and missing config keys, naming the file and line", () => {
    put(
      "spire",
      "/etc/spire/server/bad.conf",
      serverConf("/x").replace(`log_level = "INFO"`, `log_level = "INFO"\n  bogus_key = 1`),
    );
    const bad = sh("spire", "spire-server validate -config /etc/spire/server/bad.conf");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(`/etc/spire/server/bad.conf:8: server: unknown key "bogus_key"`);
    const run = sh("spire", "spire-server run -config /etc/spire/server/bad.conf");
    expect(run.code).toBe(1);
    expect(run.err).toContain(`unknown key "bogus_key"`);

    put(
      "auth",
      "/etc/spire/agent/bad.conf",
      agentConf("tpm_devid").replace(/\s*devid_pub_path = .*/, ""),
    );
    const agent = sh("auth", "spire-agent run -config /etc/spire/agent/bad.conf");
    expect(agent.code).toBe(1);
    expect(agent.err).toMatch(/bad\.conf:\d+: .*missing required key "devid_pub_path"/);

    const flag = sh("spire", `spire-server token generate -socketPath ${SERVER_SOCK} -bogus 1`);
    expect(flag.code).toBe(1);
    expect(flag.err).toContain("flag provided but not defined: -bogus");
    ok("spire", "rm /etc/spire/server/bad.conf");
    ok("auth", "rm /etc/spire/agent/bad.conf");
  });

  it("server: validates, starts as a unit, reports health and serves the bundle endpoint", async () => {
    put("spire", "/etc/spire/server/server.conf", serverConf("/etc/spire/server/devid-ca.pem"));
    expect(ok("spire", "spire-server validate -config /etc/spire/server/server.conf")).toContain(
      "valid",
    );
    put("spire", "/etc/systemd/system/spire-server.service", UNIT("server"));
    ok("spire", "systemctl daemon-reload && systemctl start spire-server");
    const health = await until("server health", () => {
      const r = sh("spire", `spire-server healthcheck ${S}`);
      return r.code === 0 ? r.out : undefined;
    });
    expect(health).toBe("Server is healthy.\n");
    expect(ok("spire", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/ready")).toBe(
      "200",
    );

    bundlePem = ok("spire", `spire-server bundle show ${S}`);
    expect(bundlePem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const endpoint = JSON.parse(ok("auth", "curl -sk https://spire:8443/")) as {
      keys: { use: string; x5c?: string[]; kid?: string }[];
      spiffe_sequence: number;
      spiffe_refresh_hint: number;
    };
    expect(endpoint.keys.some((k) => k.use === "x509-svid" && k.x5c?.length === 1)).toBe(true);
    expect(endpoint.keys.some((k) => k.use === "jwt-svid" && k.kid)).toBe(true);
    expect(endpoint.spiffe_refresh_hint).toBe(300);
    expect(ok("auth", "curl -sk -o /dev/null -w '%{http_code}' https://spire:8443/other")).toBe(
      "404",
    );
    expect(ok("auth", "curl -sk -X POST -o /dev/null -w '%{http_code}' https://spire:8443/")).toBe(
      "405",
    );

    // The CA key lives in keys_path: a restart keeps the same CA.
    ok("spire", "systemctl restart spire-server");
    await until("server health after restart", () =>
      sh("spire", `spire-server healthcheck ${S}`).code === 0 ? true : undefined,
    );
    expect(ok("spire", `spire-server bundle show ${S}`)).toBe(bundlePem);
  });

  it("join_token: attests once, serves X.509 and JWT SVIDs to the matching uid only", async () => {
    const generated = JSON.parse(
      ok(
        "spire",
        `spire-server token generate ${S} -spiffeID spiffe://${TD}/host/auth -ttl 600 -output json`,
      ),
    ) as { value: string; expires_at: string };
    token = generated.value;
    expect(token).toMatch(/^[0-9a-f-]{36}$/);
    put("auth", "/etc/spire/agent/join_token", token + "\n", "0600");
    put("auth", "/etc/spire/agent/bundle.pem", bundlePem);
    put("auth", "/etc/spire/agent/agent.conf", agentConf("join_token"));
    put("auth", "/etc/systemd/system/spire-agent.service", UNIT("agent"));
    ok(
      "spire",
      `spire-server entry create ${S} -parentID spiffe://${TD}/host/auth -spiffeID spiffe://${TD}/workload/app -selector unix:uid:${uid}`,
    );
    ok("auth", "systemctl daemon-reload && systemctl start spire-agent");
    const health = await until("agent health", () => {
      const r = sh("auth", `spire-agent healthcheck -socketPath ${AGENT_SOCK}`);
      return r.code === 0 ? r.out : undefined;
    });
    expect(health).toBe("Agent is healthy.\n");
    expect(ok("auth", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8088/ready")).toBe(
      "200",
    );

    const agents = JSON.parse(ok("spire", `spire-server agent list ${S} -output json`)) as {
      agents: { id: { path: string }; attestation_type: string }[];
    };
    expect(agents.agents.map((a) => a.id.path)).toEqual([`/spire/agent/join_token/${token}`]);
    expect(agents.agents[0]!.attestation_type).toBe("join_token");
    expect(ok("auth", "ls /var/lib/spire/agent").split("\n")).toEqual(
      expect.arrayContaining(["agent-data.json", "keys.json"]),
    );

    const fetched = await until("an X.509 SVID for the app user", () => {
      const r = sh(
        "auth",
        `runuser -u ${APP_USER} -- spire-agent api fetch x509 -socketPath ${AGENT_SOCK} -write /tmp/svid-app`,
      );
      return r.code === 0 ? r.out : undefined;
    });
    expect(fetched).toContain(`SPIFFE ID:\t\tspiffe://${TD}/workload/app`);
    expect(
      ok("auth", "openssl verify -CAfile /tmp/svid-app/bundle.0.pem /tmp/svid-app/svid.0.pem"),
    ).toContain(": OK");
    expect(
      ok("auth", "openssl x509 -in /tmp/svid-app/svid.0.pem -noout -ext subjectAltName"),
    ).toContain(`URI:spiffe://${TD}/workload/app`);
    // root (uid 0) has no entry.
    const root = sh("auth", `spire-agent api fetch x509 -socketPath ${AGENT_SOCK}`);
    expect(root.code).toBe(1);
    expect(root.err).toContain("no identity issued");

    const jwtOut = ok(
      "auth",
      `runuser -u ${APP_USER} -- spire-agent api fetch jwt -audience openbao -socketPath ${AGENT_SOCK}`,
    );
    const jwt = /token\(spiffe:\/\/funlab\.casa\/workload\/app\):\n\t(\S+)/.exec(jwtOut)?.[1];
    expect(jwt).toBeDefined();
    const [h, p, sig] = jwt!.split(".");
    const header = JSON.parse(Buffer.from(h!, "base64url").toString()) as {
      alg: string;
      kid: string;
    };
    const claims = JSON.parse(Buffer.from(p!, "base64url").toString()) as Record<string, unknown>;
    expect(header.alg).toBe("ES256");
    expect(claims).toMatchObject({
      iss: "https://spire.funlab.casa",
      sub: `spiffe://${TD}/workload/app`,
      aud: ["openbao"],
    });
    const jwks = JSON.parse(ok("auth", "curl -sk https://spire:8443/")) as {
      keys: ({ kid?: string } & Record<string, string>)[];
    };
    const jwk = jwks.keys.find((k) => k.kid === header.kid)!;
    const key = createPublicKey({
      key: { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! },
      format: "jwk",
    });
    expect(
      verify(
        "sha256",
        Buffer.from(`${h}.${p}`),
        { key, dsaEncoding: "ieee-p1363" },
        Buffer.from(sig!, "base64url"),
      ),
    ).toBe(true);
  });

  it("join_token: a cached SVID is never re-attested, a spent token fails loudly and leaves the cache", async () => {
    const before = ok("auth", "sha256sum /var/lib/spire/agent/agent-data.json");
    ok("auth", "systemctl restart spire-agent");
    await until("agent health after restart", () =>
      sh("auth", `spire-agent healthcheck -socketPath ${AGENT_SOCK}`).code === 0 ? true : undefined,
    );
    expect(journal("auth", "spire-agent")).toContain("SVID loaded");
    expect(journal("auth", "spire-agent")).not.toContain("Node attestation");

    // The same (spent) token on the command line, with the cache: starts, does not attest, and
    // exits cleanly on SIGTERM.
    ok("auth", "systemctl stop spire-agent");
    const cached = sh(
      "auth",
      `timeout --preserve-status -s TERM 4 spire-agent run -config /etc/spire/agent/agent.conf -joinToken ${token}`,
    );
    expect(cached.code).toBe(0);
    expect(cached.err).toContain("SVID loaded");
    expect(cached.err).toContain("Agent stopped gracefully");

    // A fresh data_dir with the spent token: attestation is refused, the agent exits non-zero.
    put("auth", "/etc/spire/agent/fresh.conf", agentConf("join_token", "/var/lib/spire/fresh"));
    const spent = sh("auth", "spire-agent run -config /etc/spire/agent/fresh.conf");
    expect(spent.code).not.toBe(0);
    expect(spent.err).toContain("join token does not exist or has already been used");
    expect(sh("auth", "test -e /var/lib/spire/fresh/agent-data.json").code).toBe(1);
    await journalHas("spire", "spire-server", "join token does not exist or has already been used");
    expect(ok("auth", "sha256sum /var/lib/spire/agent/agent-data.json")).toBe(before);
    ok("auth", "systemctl start spire-agent");
  });

  it("tpm_devid: the migration path re-attests with the DevID, node alias entries apply", async () => {
    ok(
      "spire",
      `spire-server entry create ${S} -node -spiffeID spiffe://${TD}/host/auth-tpm -selector tpm_devid:subject:cn:auth.funlab.casa`,
    );
    ok(
      "spire",
      `spire-server entry create ${S} -parentID spiffe://${TD}/host/auth-tpm -spiffeID spiffe://${TD}/workload/app-tpm -selector unix:user:${APP_USER}`,
    );
    ok("auth", "systemctl stop spire-agent");
    put("auth", "/etc/spire/agent/agent.conf", agentConf("tpm_devid"));
    ok("auth", "rm /var/lib/spire/agent/agent-data.json && systemctl start spire-agent");
    await until("tpm_devid agent health", () =>
      sh("auth", `spire-agent healthcheck -socketPath ${AGENT_SOCK}`).code === 0 ? true : undefined,
    );
    const sha1 = ok(
      "auth",
      `openssl x509 -in ${DEVID}/devid.crt -outform der | sha1sum | cut -d' ' -f1`,
    ).trim();
    const caSha1 = ok(
      "auth",
      "openssl x509 -in /root/devid-ca/ca.crt -outform der | sha1sum | cut -d' ' -f1",
    ).trim();
    const shown = JSON.parse(
      ok(
        "spire",
        `spire-server agent show ${S} -spiffeID spiffe://${TD}/spire/agent/tpm_devid/${sha1} -output json`,
      ),
    ) as {
      attestation_type: string;
      selectors: { type: string; value: string }[];
      can_reattest: boolean;
    };
    expect(shown.attestation_type).toBe("tpm_devid");
    expect(shown.can_reattest).toBe(true);
    expect(shown.selectors).toEqual([
      { type: "tpm_devid", value: "subject:cn:auth.funlab.casa" },
      { type: "tpm_devid", value: "issuer:cn:Lab DevID Root" },
      { type: "tpm_devid", value: `fingerprint:${caSha1}` },
    ]);
    await journalHas("auth", "spire-agent", `spire/agent/tpm_devid/${sha1}`);

    const fetched = await until("an X.509 SVID through the node alias", () => {
      const r = sh(
        "auth",
        `runuser -u ${APP_USER} -- spire-agent api fetch x509 -socketPath ${AGENT_SOCK}`,
      );
      return r.code === 0 ? r.out : undefined;
    });
    expect(fetched).toContain(`spiffe://${TD}/workload/app-tpm`);
    expect(fetched).not.toContain(`spiffe://${TD}/workload/app\n`);

    ok(
      "spire",
      `spire-server agent evict ${S} -spiffeID spiffe://${TD}/spire/agent/join_token/${token}`,
    );
    const left = JSON.parse(ok("spire", `spire-server agent list ${S} -output json`)) as {
      agents: { id: { path: string } }[];
    };
    expect(left.agents.map((a) => a.id.path)).toEqual([`/spire/agent/tpm_devid/${sha1}`]);

    // A tpm_devid agent can re-attest: evicted, it attests again with the TPM on its own.
    const tpmId = `spiffe://${TD}/spire/agent/tpm_devid/${sha1}`;
    ok("spire", `spire-server agent evict ${S} -spiffeID ${tpmId}`);
    await until("the evicted tpm_devid agent to re-attest", () =>
      sh("spire", `spire-server agent show ${S} -spiffeID ${tpmId}`).code === 0 ? true : undefined,
    );
    await journalHas("auth", "spire-agent", "re-attesting");
    await until("the re-attested agent's health", () =>
      sh("auth", `spire-agent healthcheck -socketPath ${AGENT_SOCK}`).code === 0 ? true : undefined,
    );
  });

  it("tpm_devid: a wrong devid_ca_path fails attestation in both journals and the agent stays unhealthy", async () => {
    put("spire", "/etc/spire/server/server.conf", serverConf("/etc/spire/server/other-ca.pem"));
    ok("spire", "systemctl restart spire-server");
    await until("server health", () =>
      sh("spire", `spire-server healthcheck ${S}`).code === 0 ? true : undefined,
    );
    ok("auth", "systemctl stop spire-agent && rm /var/lib/spire/agent/agent-data.json");
    // Only what is logged from now on counts: earlier runs left their lines in the journals.
    const since = { spire: ok("spire", "date +%s").trim(), auth: ok("auth", "date +%s").trim() };
    ok("auth", "systemctl start spire-agent");
    const logged = (host: LabHost, unit: string, re: RegExp) =>
      until(`${re.source} in ${unit}'s journal`, () => {
        const text = ok(
          host,
          `journalctl --no-pager -o cat -u ${unit} --since @${since[host as "spire" | "auth"]}`,
        );
        return re.test(text) ? text : undefined;
      });
    const failed = await logged("auth", "spire-agent", /Agent crashed.*unable to verify DevID/);
    expect(failed).toContain("devid_ca_path /etc/spire/server/other-ca.pem");
    await logged("spire", "spire-server", /Failed to attest agent.*unable to verify DevID/);
    const health = sh("auth", `spire-agent healthcheck -socketPath ${AGENT_SOCK}`);
    expect(health.code).toBe(1);
    expect(health.err).toContain("Agent is unhealthy");
    expect(sh("auth", "test -e /var/lib/spire/agent/agent-data.json").code).toBe(1);
  });
});
