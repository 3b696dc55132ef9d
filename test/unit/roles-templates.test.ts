import { join, resolve } from "node:path";
import hcl from "js-hcl-parser";
import { describe, expect, it } from "vitest";
import { renderTemplateFile } from "../../engine/modules/template.js";
import type { TaskContext } from "../../engine/dsl/task.js";
import { agentConfView, SpireAgentVars } from "../../roles/spire-agent/index.js";
import { serverConfView, SpireServerVars } from "../../roles/spire-server/index.js";
import { openbaoConfView, OpenbaoVars } from "../../roles/openbao/index.js";
import { compactJwe, renderCaJson, StepCaVars } from "../../roles/step-ca/index.js";
import { jwksConfView, NginxJwksVars } from "../../roles/nginx-jwks/index.js";
import { Value } from "@sinclair/typebox/value";
import type { TObject } from "@sinclair/typebox";

const ROLES = resolve(import.meta.dirname, "../../roles");
const release = {
  version: "1.14.1",
  url: "http://10.77.0.1:8099/x.tar.gz",
  sha256: "a".repeat(64),
};

/** A role's variables: schema defaults plus the given values, checked against the schema. */
function varsOf<T extends TObject>(schema: T, given: Record<string, unknown>) {
  const vars = Value.Default(schema, structuredClone(given)) as Record<string, unknown>;
  const errors = [...Value.Errors(schema, vars)];
  expect(errors.map((e) => `${e.path} ${e.message}`)).toEqual([]);
  return vars as T["static"];
}

function render(role: string, src: string, view: Record<string, unknown>): string {
  return renderTemplateFile(src, join(ROLES, role), view, {});
}

/** HCL v1, parsed by HashiCorp's own parser (compiled to JS), as SPIRE and OpenBao read it. */
function parseHcl(text: string): Record<string, unknown> {
  return JSON.parse(hcl.parse(text)) as Record<string, unknown>;
}

/** HCL v1's JSON form wraps every block in a list; this reads one path of single blocks. */
function dig(tree: unknown, ...path: string[]): unknown {
  let node: unknown = tree;
  for (const key of path) {
    const list = (node as Record<string, unknown[]> | undefined)?.[key];
    node = Array.isArray(list) && list.length === 1 ? list[0] : list;
  }
  return node;
}

/** Labels of the plugins of one type, in file order. */
function pluginLabels(tree: unknown, type: string): string[] {
  const list = ((dig(tree, "plugins") as Record<string, unknown[]>)[type] ?? []) as Record<
    string,
    unknown
  >[];
  return list.flatMap((item) => Object.keys(item));
}

describe("spire-server server.conf", () => {
  const base = { spireRelease: release };

  it("renders join_token only by default, with sqlite, the disk key manager and the socket under /run", () => {
    const tree = parseHcl(
      render("spire-server", "server.conf.hbs", serverConfView(varsOf(SpireServerVars, base))),
    );
    expect(dig(tree, "server", "trust_domain")).toBe("funlab.casa");
    expect(dig(tree, "server", "socket_path")).toBe("/run/spire/server/api.sock");
    expect(dig(tree, "server", "bind_port")).toBe(8081);
    expect(dig(tree, "server", "jwt_issuer")).toBeUndefined();
    expect(pluginLabels(tree, "NodeAttestor")).toEqual(["join_token"]);
    expect(dig(tree, "plugins", "DataStore", "sql", "plugin_data")).toEqual({
      database_type: "sqlite3",
      connection_string: "/var/lib/spire/server/datastore.sqlite3",
    });
    expect(dig(tree, "plugins", "KeyManager", "disk", "plugin_data")).toEqual({
      keys_path: "/var/lib/spire/server/keys.json",
    });
    expect(dig(tree, "server", "federation", "bundle_endpoint", "port")).toBe(8443);
    expect(
      Object.keys(dig(tree, "server", "federation", "bundle_endpoint", "profile") as object),
    ).toEqual(["https_spiffe"]);
  });

  it("adds tpm_devid beside join_token with both CA paths, and the JWT issuer when set", () => {
    const vars = varsOf(SpireServerVars, {
      ...base,
      spireNodeAttestors: ["join_token", "tpm_devid"],
      spireDevidCaFile: "/x/devid.pem",
      spireEndorsementCaFile: "/x/ek.pem",
      spireJwtIssuer: "https://spire.funlab.casa:8444",
    });
    const tree = parseHcl(render("spire-server", "server.conf.hbs", serverConfView(vars)));
    expect(pluginLabels(tree, "NodeAttestor")).toEqual(["join_token", "tpm_devid"]);
    const attestors =
      (dig(tree, "plugins") as Record<string, Record<string, unknown[]>[]>).NodeAttestor ?? [];
    expect(dig(attestors[1], "tpm_devid", "plugin_data")).toEqual({
      devid_ca_path: "/etc/spire/server/devid-ca.pem",
      endorsement_ca_path: "/etc/spire/server/endorsement-ca.pem",
    });
    expect(dig(tree, "server", "jwt_issuer")).toBe("https://spire.funlab.casa:8444");
  });
});

describe("spire-agent agent.conf", () => {
  const base = { spireRelease: release, spireServerAddress: "spire.funlab.casa" };

  it("join_token: names the token file, never a token, and bootstraps from a bundle file", () => {
    const tree = parseHcl(
      render("spire-agent", "agent.conf.hbs", agentConfView(varsOf(SpireAgentVars, base))),
    );
    expect(pluginLabels(tree, "NodeAttestor")).toEqual(["join_token"]);
    expect(dig(tree, "agent", "join_token_file")).toBe("/etc/spire/agent/join_token");
    expect(dig(tree, "agent", "join_token")).toBeUndefined();
    expect(dig(tree, "agent", "trust_bundle_path")).toBe("/etc/spire/agent/bootstrap-bundle.pem");
    expect(dig(tree, "agent", "insecure_bootstrap")).toBeUndefined();
    expect(dig(tree, "agent", "data_dir")).toBe("/var/lib/spire/agent");
    expect(pluginLabels(tree, "WorkloadAttestor")).toEqual(["unix"]);
  });

  it("tpm_devid: the blob and certificate paths, no persistent handle, no join token", () => {
    const vars = varsOf(SpireAgentVars, { ...base, spireAgentAttestor: "tpm_devid" });
    const text = render("spire-agent", "agent.conf.hbs", agentConfView(vars));
    const tree = parseHcl(text);
    expect(pluginLabels(tree, "NodeAttestor")).toEqual(["tpm_devid"]);
    expect(dig(tree, "plugins", "NodeAttestor", "tpm_devid", "plugin_data")).toEqual({
      devid_cert_path: "/var/lib/tpm2-devid/devid.crt",
      devid_priv_path: "/var/lib/tpm2-devid/devid.priv.blob",
      devid_pub_path: "/var/lib/tpm2-devid/devid.pub.blob",
    });
    expect(text).not.toMatch(/join_token|0x8101/);
  });
});

describe("openbao HCL", () => {
  const vars = varsOf(OpenbaoVars, {
    openbaoRelease: { ...release, version: "2.5.0" },
    openbaoDnsNames: ["spire.funlab.casa"],
    openbaoApiAddr: "https://spire.funlab.casa:8200",
    openbaoClusterAddr: "https://spire.funlab.casa:8201",
  });

  it("renders raft storage with a node id and a TLS listener", () => {
    const parsed = parseHcl(
      render("openbao", "openbao.hcl.hbs", openbaoConfView(vars, "spire")),
    ) as {
      storage: { raft: { path: string; node_id: string }[] }[];
      listener: {
        tcp: {
          address: string;
          tls_cert_file: string;
          tls_key_file: string;
          tls_disable?: unknown;
        }[];
      }[];
      cluster_addr: string;
      api_addr: string;
    };
    expect(parsed.storage[0]?.raft[0]).toEqual({ path: "/var/lib/openbao", node_id: "spire" });
    const tcp = parsed.listener[0]?.tcp[0];
    expect(tcp?.tls_cert_file).toBe("/etc/openbao/tls/tls.crt");
    expect(tcp?.tls_key_file).toBe("/etc/openbao/tls/tls.key");
    expect(tcp?.tls_disable).toBeUndefined();
    expect(parsed.cluster_addr).toBe("https://spire.funlab.casa:8201");
  });

  it("renders the workload policy as HCL paths with capability lists", () => {
    const text = render("openbao", "policy.hcl.hbs", {
      paths: [
        { path: "secret/data/spire/*", capabilities: ["read"] },
        { path: "secret/metadata/spire/*", capabilities: ["read", "list"] },
      ],
    });
    expect(parseHcl(text)).toEqual({
      path: [
        { "secret/data/spire/*": [{ capabilities: ["read"] }] },
        { "secret/metadata/spire/*": [{ capabilities: ["read", "list"] }] },
      ],
    });
  });
});

describe("step-ca ca.json", () => {
  const registered = {
    jwk_tpm_devidPub: {
      changed: false,
      failed: false,
      skipped: false,
      reason: "",
      stdout: '{"kty":"EC","crv":"P-256","kid":"k1","x":"x","y":"y"}',
    },
    jwk_tpm_devidPriv: {
      changed: false,
      failed: false,
      skipped: false,
      reason: "",
      stdout: '{"protected":"p","encrypted_key":"e","iv":"i","ciphertext":"c","tag":"t"}',
    },
    jwk_servicesPub: {
      changed: false,
      failed: false,
      skipped: false,
      reason: "",
      stdout: '{"kty":"EC","kid":"k2"}',
    },
    jwk_servicesPriv: {
      changed: false,
      failed: false,
      skipped: false,
      reason: "",
      stdout: "a.b.c.d.e",
    },
  };
  const ctx = (check: boolean): TaskContext => ({
    host: "ca",
    vars: {},
    registered,
    check,
    get facts(): never {
      throw new Error("the step-ca templates read no gathered facts");
    },
    failure: { kind: "none" },
    result: () => undefined,
  });
  const base = { stepCaRelease: release, stepRelease: release, stepCaDnsNames: ["ca.funlab.casa"] };

  it("gives tpm-devid 90-day certificates and keys the lab intermediate from a file", () => {
    const vars = varsOf(StepCaVars, { ...base, stepCaSigningKey: { kind: "lab-software" } });
    const config = JSON.parse(renderCaJson(vars, ctx(false))) as {
      key: string;
      kms?: unknown;
      dnsNames: string[];
      authority: {
        provisioners: {
          name: string;
          type: string;
          key: { kid: string };
          encryptedKey: string;
          claims: Record<string, string>;
        }[];
      };
    };
    const devid = config.authority.provisioners.find((p) => p.name === "tpm-devid");
    expect(devid?.type).toBe("JWK");
    expect(devid?.key.kid).toBe("k1");
    expect(devid?.encryptedKey).toBe("p.e.i.c.t");
    expect(devid?.claims.defaultTLSCertDuration).toBe("2160h");
    expect(devid?.claims.maxTLSCertDuration).toBe("2160h");
    expect(config.key).toBe("/etc/step-ca/secrets/intermediate_ca_key");
    expect(config.kms).toBeUndefined();
    expect(config.dnsNames).toEqual(["ca.funlab.casa", "127.0.0.1"]);
  });

  it("signs with the YubiKey slot through the yubikey KMS in production, and adds ACME when enabled", () => {
    const vars = varsOf(StepCaVars, {
      ...base,
      stepCaSigningKey: { kind: "yubikey", key: "yubikey:slot-id=9c" },
      stepCaRootFile: "./ca/root.crt",
      stepCaIntermediateFile: "./ca/int.crt",
      stepCaAcme: { enabled: true, defaultTLSCertDuration: "24h", maxTLSCertDuration: "168h" },
    });
    const config = JSON.parse(renderCaJson(vars, ctx(false))) as {
      key: string;
      kms: { type: string; uri: string };
      authority: { provisioners: { type: string; name: string }[] };
    };
    expect(config.key).toBe("yubikey:slot-id=9c");
    expect(config.kms).toEqual({
      type: "yubikey",
      uri: "yubikey:pin-source=/etc/step-ca/secrets/yubikey-pin",
    });
    expect(config.authority.provisioners.map((p) => `${p.type}:${p.name}`)).toEqual([
      "JWK:tpm-devid",
      "JWK:services",
      "ACME:acme",
    ]);
  });

  it("turns the JSON form of a JWE into the compact form ca.json wants", () => {
    expect(
      compactJwe('{"protected":"a","encrypted_key":"b","iv":"c","ciphertext":"d","tag":"e"}\n'),
    ).toBe("a.b.c.d.e");
    expect(compactJwe("a.b.c.d.e\n")).toBe("a.b.c.d.e");
  });
});

describe("nginx-jwks server block", () => {
  it("proxies exactly /keys to the bundle endpoint's root path over TLS on 8444", () => {
    const text = render(
      "nginx-jwks",
      "jwks.conf.hbs",
      jwksConfView(varsOf(NginxJwksVars, { jwksDnsNames: ["spire.funlab.casa"] })),
    );
    expect(text).toContain("listen 8444 ssl;");
    expect(text).toMatch(/location = \/keys \{\s+proxy_pass https:\/\/127\.0\.0\.1:8443\/;/);
    expect(text).toContain("ssl_certificate /etc/nginx/tls/jwks.crt;");
  });
});
