import { existsSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { hostPath, lab, omensPlay, results, sshRoot } from "../helpers/lab.js";
import { pinnedLabInventory } from "./roles-lab.js";

// The devid role never makes a second key, and stops when the key persisted at 0x81010002 is not
// the key whose blobs SPIRE would load.

const SPRINT1 = "playbooks/sprint1-foundation.ts";
const SPRINT2 = "playbooks/sprint2-integration.ts";
const SRK = `tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' -c $t/srk.ctx && tpm2_flushcontext -t`;
let inventory = "";

/** Runs a script on auth with the TPM's TCTI and a scratch folder $t. */
function tpm(script: string): string {
  const tcti = lab().hosts.auth.tcti;
  return sshRoot(
    "auth",
    `set -e; export TPM2TOOLS_TCTI='${tcti}'; t=$(mktemp -d); trap 'rm -rf $t' EXIT\n${script}`,
  );
}

const devidOnAuth = () => omensPlay([SPRINT2, "-i", inventory, "--json", "--limit", "auth"]);

beforeAll(async () => {
  inventory = pinnedLabInventory();
  if (existsSync(hostPath("auth", "/var/lib/tpm2-devid/devid.crt"))) return;
  for (const book of [SPRINT1, SPRINT2]) {
    const run = await omensPlay([book, "-i", inventory, "--json"]);
    expect(run.code, run.stderr).toBe(0);
  }
}, 900_000);

describe("devid: one key per host, and blobs that agree with the TPM", () => {
  it("a re-run makes no new key and keeps the certificate", async () => {
    const before = sshRoot(
      "auth",
      "sha256sum /var/lib/tpm2-devid/devid.priv.blob /var/lib/tpm2-devid/devid.crt",
    );
    const run = await devidOnAuth();
    expect(run.code, run.stderr).toBe(0);
    const key = results(run, "auth").find((r) =>
      r.task.startsWith("devid: a DevID key in the TPM"),
    );
    expect(key?.status).toBe("ok");
    expect(key?.reason).toBe("/var/lib/tpm2-devid/devid.priv.blob exists");
    expect(
      sshRoot(
        "auth",
        "sha256sum /var/lib/tpm2-devid/devid.priv.blob /var/lib/tpm2-devid/devid.crt",
      ),
    ).toBe(before);
  });

  it("stops when another key sits at 0x81010002, and when the handle is empty; the certificate is not touched", async () => {
    const crt = sshRoot("auth", "sha256sum /var/lib/tpm2-devid/devid.crt");
    try {
      tpm(`tpm2_evictcontrol -Q -C o -c 0x81010002
${SRK}
tpm2_create -Q -C $t/srk.ctx -G ecc256:ecdsa-sha256 -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign' -u $t/o.pub -r $t/o.priv && tpm2_flushcontext -t
tpm2_load -Q -C $t/srk.ctx -u $t/o.pub -r $t/o.priv -c $t/o.ctx && tpm2_flushcontext -t
tpm2_evictcontrol -Q -C o -c $t/o.ctx 0x81010002`);
      const other = await devidOnAuth();
      expect(other.code).toBe(2);
      const failed = results(other, "auth").find((r) => r.status === "failed");
      expect(failed?.task).toBe("devid: the key at 0x81010002 is the one in devid.pub.blob");
      expect(failed?.error).toContain("the blobs and the handle disagree");

      tpm("tpm2_evictcontrol -Q -C o -c 0x81010002");
      const empty = await devidOnAuth();
      expect(empty.code).toBe(2);
      expect(results(empty, "auth").find((r) => r.status === "failed")?.error).toContain(
        "holds DevID blobs but the TPM has no key at 0x81010002",
      );
      expect(sshRoot("auth", "sha256sum /var/lib/tpm2-devid/devid.crt")).toBe(crt);
    } finally {
      // Put the real DevID back at the handle, from its own blobs.
      tpm(`tpm2_evictcontrol -Q -C o -c 0x81010002 >/dev/null 2>&1 || true
${SRK}
tpm2_load -Q -C $t/srk.ctx -u /var/lib/tpm2-devid/devid.tpm2b.pub -r /var/lib/tpm2-devid/devid.tpm2b.priv -c $t/d.ctx && tpm2_flushcontext -t
tpm2_evictcontrol -Q -C o -c $t/d.ctx 0x81010002`);
    }
    const restored = await devidOnAuth();
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.recap.auth?.changed).toBe(0);
  }, 300_000);
});
