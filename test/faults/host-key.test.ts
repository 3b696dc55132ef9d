import { execFileSync, execSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { lab, labInventoryFile, omensPlay, results } from "../helpers/lab.js";

// Fault: a host's SSH key changes (its entry in a copy of known_hosts rewritten with another
// key). The engine refuses to connect, shows both fingerprints and gives the exact commands to
// accept the new key for the known_hosts file in use; running them makes the host reachable.
const fingerprintOf = (publicKeyLine: string) => {
  const dir = mkdtempSync(join(tmpdir(), "omens-fp-"));
  writeFileSync(join(dir, "k.pub"), publicKeyLine + "\n");
  return execFileSync("ssh-keygen", ["-lf", join(dir, "k.pub")], { encoding: "utf8" }).split(
    " ",
  )[1];
};

function knownHostsWithForgedCa(): { file: string; real: string; forged: string } {
  const dir = mkdtempSync(join(tmpdir(), "omens-hostkey-"));
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "other")]);
  const other = readFileSync(join(dir, "other.pub"), "utf8").split(" ").slice(0, 2).join(" ");
  const address = lab().hosts.ca.address;
  const lines = readFileSync(lab().knownHosts, "utf8").trimEnd().split("\n");
  const caLine = lines.find((l) => l.split(" ")[0]?.split(",").includes(address)) ?? "";
  const [names, ...key] = caLine.split(" ");
  const rewritten = lines.map((l) => (l === caLine ? `${names} ${other}` : l));
  const file = join(dir, "known_hosts");
  writeFileSync(file, rewritten.join("\n") + "\n");
  return { file, real: fingerprintOf(key.join(" ")) ?? "", forged: fingerprintOf(other) ?? "" };
}

describe("fault: a host's SSH key changes", () => {
  it("refuses to connect, shows both fingerprints and the commands that accept the new key", async () => {
    const { file, real, forged } = knownHostsWithForgedCa();
    const inventory = labInventoryFile({ hostSettings: { ca: `knownHosts: ${file}` } });
    const run = await omensPlay(["test/fixtures/conn/tpm-validate.ts", "-i", inventory, "--json"]);
    expect(run.code).toBe(4);
    expect(run.recap.ca).toMatchObject({ unreachable: 1, ok: 0 });
    expect(run.recap.auth).toMatchObject({ ok: 2, unreachable: 0 });
    const error = results(run, "ca")[0]?.error ?? "";
    const address = lab().hosts.ca.address;
    expect(error).toContain(`host key of ${address} changed: offered ${real}`);
    expect(error).toContain(`known_hosts has ${forged}`);
    expect(error).toContain("refusing to connect");
    const accept = /replace the old one: (.*)$/m.exec(error)?.[1] ?? "";
    expect(accept).toBe(
      `ssh-keygen -R ${address} -f ${file} && ssh-keyscan -p 22 ${address} >> ${file}`,
    );

    execSync(accept, { stdio: "ignore" }); // the operator accepts the new key as told
    const again = await omensPlay([
      "test/fixtures/conn/tpm-validate.ts",
      "-i",
      inventory,
      "--json",
    ]);
    expect(again.code, again.stdout).toBe(0);
    expect(again.recap.ca).toMatchObject({ ok: 2, unreachable: 0 });
  });
});
