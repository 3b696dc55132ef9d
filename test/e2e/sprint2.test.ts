import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import "reflect-metadata"; // @peculiar/x509 needs the Reflect metadata API before it loads
import * as x509 from "@peculiar/x509";
import hcl from "js-hcl-parser";
import { beforeAll, describe, expect, it } from "vitest";
import {
  hashHostTree,
  hostPath,
  LAB_HOSTS,
  omensPlay,
  results,
  ROOT,
  sshRoot,
  type LabHost,
  type PlayRun,
} from "../helpers/lab.js";
import { expectClean, pinnedLabInventory, playJson } from "./roles-lab.js";

// The whole stack on a fresh lab, in order: sprint 1, sprint 2, re-runs, check runs, then the
// facts a user relies on (DevID chain and key, JWKS over TLS, configs that parse), and last a
// one-variable change. The tests share the lab's state and run in file order.

const SPRINT1 = "playbooks/sprint1-foundation.ts";
const SPRINT2 = "playbooks/sprint2-integration.ts";
let inventory = "";
const play = (book: string, ...extra: string[]) => playJson(book, inventory, ...extra);

function changedTasks(run: PlayRun) {
  return results(run)
    .filter((r) => r.status === "changed")
    .map((r) => `${r.host}: ${r.task}`);
}

function diffPaths(run: PlayRun, host: string): string[] {
  return results(run, host).flatMap((r) =>
    ((r.diff ?? []) as { path: string }[]).map((d) => d.path),
  );
}

beforeAll(() => {
  execFileSync("bash", [join(ROOT, "test/lab/lab-up.sh"), "up"], { stdio: "ignore" });
  inventory = pinnedLabInventory();
}, 300_000);

describe("sprint 1 and sprint 2 on a fresh lab", () => {
  it("--check --diff lists every file sprint 1 would create and changes nothing", async () => {
    const before = LAB_HOSTS.map(hashHostTree);
    const run = await play(SPRINT1, "--check", "--diff");
    expectClean(run, "sprint 1 --check");
    expect(LAB_HOSTS.map(hashHostTree)).toEqual(before);
    expect(diffPaths(run, "spire")).toEqual(
      expect.arrayContaining([
        "/etc/spire/server/server.conf",
        "/etc/systemd/system/spire-server.service",
        "/etc/openbao/openbao.hcl",
        "/etc/systemd/system/openbao.service",
        "/etc/openbao/tls/ca.crt",
        "/etc/openbao/tls/tls.crt",
      ]),
    );
    expect(diffPaths(run, "ca")).toEqual(
      expect.arrayContaining([
        "/etc/step-ca/config/ca.json",
        "/etc/systemd/system/step-ca.service",
        "/etc/spire/agent/agent.conf",
        "/etc/spire/agent/join_token",
        "/etc/spire/agent/bootstrap-bundle.pem",
      ]),
    );
    expect(diffPaths(run, "auth")).toEqual(
      expect.arrayContaining([
        "/etc/spire/agent/agent.conf",
        "/etc/systemd/system/spire-agent.service",
      ]),
    );
  });

  it("--check --diff lists every file sprint 2 would create and changes nothing", async () => {
    const before = LAB_HOSTS.map(hashHostTree);
    const run = await play(SPRINT2, "--check", "--diff");
    expectClean(run, "sprint 2 --check");
    expect(LAB_HOSTS.map(hashHostTree)).toEqual(before);
    expect(diffPaths(run, "spire")).toEqual(
      expect.arrayContaining([
        "/etc/spire/agent/agent.conf",
        "/etc/nginx/sites-available/omens-jwks.conf",
        "/etc/nginx/tls/jwks.crt",
        "/etc/openbao/policies/spire-workload-policy.hcl",
        "/var/lib/tpm2-devid/devid.crt",
      ]),
    );
    for (const host of LAB_HOSTS)
      expect(diffPaths(run, host)).toContain("/var/lib/tpm2-devid/devid.crt");
  });

  it("sprint 1 applies cleanly, then a second run and a check run change nothing", async () => {
    expectClean(await play(SPRINT1), "sprint 1");
    const again = await play(SPRINT1);
    expectClean(again, "sprint 1, second run");
    expect(changedTasks(again)).toEqual([]);
    const before = LAB_HOSTS.map(hashHostTree);
    const check = await play(SPRINT1, "--check");
    expectClean(check, "sprint 1 --check");
    expect(changedTasks(check)).toEqual([]);
    expect(LAB_HOSTS.map(hashHostTree)).toEqual(before);
  }, 600_000);

  it("sprint 2 applies cleanly, then a second run and a check run change nothing", async () => {
    expectClean(await play(SPRINT2), "sprint 2");
    const again = await play(SPRINT2);
    expectClean(again, "sprint 2, second run");
    expect(changedTasks(again)).toEqual([]);
    const before = LAB_HOSTS.map(hashHostTree);
    const check = await play(SPRINT2, "--check");
    expectClean(check, "sprint 2 --check");
    expect(changedTasks(check)).toEqual([]);
    expect(LAB_HOSTS.map(hashHostTree)).toEqual(before);
    // Sprint 1 again over the sprint 2 state: still nothing to do.
    const first = await play(SPRINT1);
    expectClean(first, "sprint 1 after sprint 2");
    expect(changedTasks(first)).toEqual([]);
  }, 600_000);
});

describe("what the converged lab holds", () => {
  const stepRoot = () =>
    new x509.X509Certificate(
      readFileSync(hostPath("ca", "/etc/step-ca/certs/root_ca.crt"), "utf8"),
    );

  it.each(LAB_HOSTS)(
    "%s: the DevID certificate chains to the step-ca root, lasts 90 days and is the TPM's key",
    async (host) => {
      const pem = readFileSync(hostPath(host, "/var/lib/tpm2-devid/devid.crt"), "utf8");
      const [leaf, intermediate] = pem
        .split(/(?<=-----END CERTIFICATE-----)\s*/)
        .filter((p) => p.includes("BEGIN CERTIFICATE"))
        .map((p) => new x509.X509Certificate(p));
      expect(leaf && intermediate, "devid.crt holds the leaf and the intermediate").toBeTruthy();
      const root = stepRoot();
      expect(await intermediate!.verify({ publicKey: root.publicKey, signatureOnly: true })).toBe(
        true,
      );
      expect(await leaf!.verify({ publicKey: intermediate!.publicKey, signatureOnly: true })).toBe(
        true,
      );
      expect(intermediate!.issuer).toBe(root.subject);
      expect(leaf!.subject).toBe(`CN=${host}.funlab.casa`);
      const hours = (leaf!.notAfter.getTime() - leaf!.notBefore.getTime()) / 3_600_000;
      expect(hours).toBeGreaterThanOrEqual(2160);
      expect(hours).toBeLessThanOrEqual(2160 + 1);
      const tpmKey = sshRoot(
        host,
        "t=$(mktemp); TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=2321 tpm2_readpublic -Q -c 0x81010002 -f pem -o $t && cat $t; rm -f $t",
      );
      const certKey = execFileSync("openssl", ["x509", "-noout", "-pubkey"], {
        input: pem,
        encoding: "utf8",
      });
      expect(tpmKey.trim()).toBe(certKey.trim());
      // The blob SPIRE loads is the same public area as the persisted key.
      expect(
        sshRoot(
          host,
          "t=$(mktemp); TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=2321 tpm2_readpublic -Q -c 0x81010002 -f tpmt -o $t && cmp $t /var/lib/tpm2-devid/devid.pub.blob && echo same",
        ),
      ).toContain("same");
      expect(
        sshRoot(
          host,
          "stat -c '%U:%G %a' /var/lib/tpm2-devid /var/lib/tpm2-devid/devid.crt /var/lib/tpm2-devid/devid.priv.blob /var/lib/tpm2-devid/devid.pub.blob",
        )
          .trim()
          .split("\n"),
      ).toEqual(["root:tss 750", "root:tss 640", "root:tss 640", "root:tss 640"]);
    },
  );

  it("keeps secrets and keys root-only and service files owned as declared", () => {
    const modes = (host: LabHost, paths: string[]) =>
      sshRoot(host, `stat -c '%n %U:%G %a' ${paths.join(" ")}`)
        .trim()
        .split("\n");
    expect(
      modes("spire", [
        "/etc/openbao/init/init.json",
        "/etc/openbao/init",
        "/etc/openbao/tls/tls.key",
        "/var/lib/spire/server",
        "/etc/spire/server/server.conf",
      ]),
    ).toEqual([
      "/etc/openbao/init/init.json root:root 600",
      "/etc/openbao/init root:root 700",
      "/etc/openbao/tls/tls.key root:openbao 640",
      "/var/lib/spire/server spire:spire 700",
      "/etc/spire/server/server.conf root:spire 640",
    ]);
    expect(
      modes("ca", [
        "/etc/step-ca/secrets/tpm-devid.password",
        "/etc/step-ca/secrets/intermediate_ca_key",
        "/etc/spire/agent/join_token",
        "/var/lib/spire/agent",
      ]),
    ).toEqual([
      "/etc/step-ca/secrets/tpm-devid.password root:root 600",
      "/etc/step-ca/secrets/intermediate_ca_key root:step 640",
      "/etc/spire/agent/join_token root:root 600",
      "/var/lib/spire/agent root:root 700",
    ]);
  });

  it("nginx serves the JWKS on 8444 to another host, over TLS that verifies against the step-ca root", () => {
    const root = readFileSync(hostPath("ca", "/etc/step-ca/certs/root_ca.crt"), "utf8");
    const b64 = Buffer.from(root).toString("base64");
    const body = sshRoot(
      "auth",
      `t=$(mktemp); echo ${b64} | base64 -d > $t; curl -sS --fail --cacert $t https://spire.lab:8444/keys; rc=$?; rm -f $t; exit $rc`,
    );
    const jwks = JSON.parse(body) as { keys: { use?: string; kty: string }[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    expect(jwks.keys.some((k) => k.use === "jwt-svid")).toBe(true);
    // Without the step-ca root the same request is refused: the check is real.
    expect(() => sshRoot("auth", "curl -sS --fail https://spire.lab:8444/keys")).toThrow();
  });

  it("every rendered HCL config parses with HashiCorp's HCL v1 parser", () => {
    const parse = (host: LabHost, file: string) =>
      JSON.parse(hcl.parse(readFileSync(hostPath(host, file), "utf8"))) as Record<
        string,
        Record<string, unknown>[]
      >;
    const server = parse("spire", "/etc/spire/server/server.conf");
    expect(server.server?.[0]?.jwt_issuer).toBe("https://spire.lab:8444");
    expect(server.plugins?.[0]?.NodeAttestor).toEqual([{ join_token: [{ plugin_data: [{}] }] }]);
    for (const host of LAB_HOSTS) {
      const agent = parse(host, "/etc/spire/agent/agent.conf");
      expect(agent.agent?.[0]?.join_token_file).toBe("/etc/spire/agent/join_token");
    }
    const bao = parse("spire", "/etc/openbao/openbao.hcl");
    expect(Object.keys(bao.storage?.[0] ?? {})).toEqual(["raft"]);
    const policy = parse("spire", "/etc/openbao/policies/spire-workload-policy.hcl");
    expect(policy.path).toEqual([{ "secret/data/spire/*": [{ capabilities: ["read"] }] }]);
  });

  it("OpenBao accepts a JWT-SVID that the agent on spire gives the openbao user, for its audience only", () => {
    const login = (audience: string) =>
      sshRoot(
        "spire",
        [
          `jwt=$(runuser -u openbao -- /usr/local/bin/spire-agent api fetch jwt -audience ${audience} -socketPath /run/spire/agent/api.sock | grep -A1 '^token(' | tail -1 | tr -d ' \\t')`,
          '[ -n "$jwt" ] || { echo "no JWT-SVID" >&2; exit 1; }',
          'BAO_ADDR=https://127.0.0.1:8200 BAO_CACERT=/etc/openbao/tls/ca.crt bao write -format=json auth/jwt/login role=spire-workload jwt="$jwt" 2>/dev/null',
        ].join("\n"),
      );
    const accepted = JSON.parse(login("openbao")) as { auth: { policies: string[] } };
    expect(accepted.auth.policies).toContain("spire-workload-policy");
    expect(() => login("someone-else")).toThrow();
  });
});

describe("changing one variable", () => {
  it("changes exactly the affected files and restarts exactly the affected services, once", async () => {
    const units = ["spire-server", "spire-agent", "step-ca", "openbao", "nginx"];
    const invocations = () =>
      Object.fromEntries(
        LAB_HOSTS.map((h) => [
          h,
          sshRoot(h, units.map((u) => `systemctl show -p InvocationID --value ${u}`).join("; ")),
        ]),
      );
    const before = invocations();
    const dir = mkdtempSync(join(tmpdir(), "omens-var-"));
    const changed = join(dir, "lab.yaml");
    writeFileSync(
      changed,
      readFileSync(inventory, "utf8").replace(
        "    agents:\n",
        "    agents:\n      vars: { spireAgentLogLevel: DEBUG }\n",
      ),
    );
    const run = await omensPlay([SPRINT1, "-i", changed, "--json"]);
    expectClean(run, "sprint 1 with a changed variable");
    expect(changedTasks(run).sort()).toEqual([
      "auth: spire-agent: restart",
      "auth: spire-agent: template /etc/spire/agent/agent.conf",
      "ca: spire-agent: restart",
      "ca: spire-agent: template /etc/spire/agent/agent.conf",
    ]);
    const after = invocations();
    for (const host of ["auth", "ca"] as const) {
      const [b, a] = [before[host]!.split("\n"), after[host]!.split("\n")];
      expect(a[1]).not.toBe(b[1]); // spire-agent restarted
      expect([a[0], a[2], a[3], a[4]]).toEqual([b[0], b[2], b[3], b[4]]);
      expect(readFileSync(hostPath(host, "/etc/spire/agent/agent.conf"), "utf8")).toContain(
        'log_level = "DEBUG"',
      );
    }
    expect(after.spire).toBe(before.spire);
    // And back: the shipped inventory restores the file and restarts the agents once more.
    const back = await play(SPRINT1);
    expectClean(back, "sprint 1 back to the shipped inventory");
    expect(
      changedTasks(back)
        .filter((t) => t.endsWith("restart"))
        .sort(),
    ).toEqual(["auth: spire-agent: restart", "ca: spire-agent: restart"]);
  }, 600_000);
});
