import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hashHostTree, LAB_HOSTS, labInventory, omensPlay, results } from "../helpers/lab.js";

describe("sprint 1 over the lab", () => {
  it("checks auth only with --limit auth --check --diff, and no host's files change", async () => {
    const before = LAB_HOSTS.map(hashHostTree);
    const run = await omensPlay([
      "playbooks/sprint1-foundation.ts",
      "-i",
      labInventory(),
      "--limit",
      "auth",
      "--check",
      "--diff",
      "--json",
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(Object.keys(run.recap)).toEqual(["auth"]);
    expect(run.recap.auth).toMatchObject({ failed: 0, unreachable: 0, rescued: 0, ignored: 0 });
    expect(new Set(results(run).map((r) => r.host))).toEqual(new Set(["auth"]));
    expect(LAB_HOSTS.map(hashHostTree)).toEqual(before);
  });

  it("reports the TPM and EK facts of every host, read-only", async () => {
    const before = LAB_HOSTS.map(hashHostTree);
    const run = await omensPlay([
      "playbooks/sprint1-foundation.ts",
      "-i",
      labInventory(),
      "--check",
      "--json",
    ]);
    expect(run.code, run.stderr).toBe(0);
    for (const host of LAB_HOSTS) {
      const [tpm, ek] = results(run, host);
      expect(tpm?.status).toBe("ok");
      expect(tpm?.reason).toMatch(/^TPM 2\.0 by IBM, firmware \d+\.\d+$/);
      expect(ek?.status).toBe("ok");
      expect(ek?.reason).toMatch(/issuer "CN=swtpm-localca", signed by "CN=swtpm-localca"/);
    }
    expect(LAB_HOSTS.map(hashHostTree)).toEqual(before);
  });

  it("fails on every host with the NV index and the issuer when the CA is wrong", async () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-wrong-ca-"));
    const wrongCa = join(dir, "wrong-ca.pem");
    // A real CA certificate that did not sign the lab's EK certificates.
    const { execFileSync } = await import("node:child_process");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        join(dir, "k.pem"),
        "-out",
        wrongCa,
        "-subj",
        "/CN=swtpm-localca",
        "-days",
        "2",
      ],
      { stdio: "ignore" },
    );
    const inventory = join(dir, "lab-wrong-ca.yaml");
    const { readFileSync } = await import("node:fs");
    writeFileSync(
      inventory,
      readFileSync(labInventory(), "utf8").replace(/ekCaBundle: .*/, `ekCaBundle: ${wrongCa}`),
    );
    const run = await omensPlay([
      "playbooks/sprint1-foundation.ts",
      "-i",
      inventory,
      "--json",
      "--retry-file",
      join(dir, "retry"),
    ]);
    expect(run.code).toBe(2);
    for (const host of LAB_HOSTS) {
      const failed = results(run, host).find((r) => r.status === "failed");
      expect(failed?.error).toContain("TPM NV index 0x01c00002");
      expect(failed?.error).toContain('issuer "CN=swtpm-localca"');
      expect(failed?.error).toContain(`does not chain to any CA in ${wrongCa}`);
      expect(failed?.host).toBe(host);
    }
    expect(readFileSync(join(dir, "retry"), "utf8").trim().split("\n").sort()).toEqual(
      [...LAB_HOSTS].sort(),
    );
  });
});
