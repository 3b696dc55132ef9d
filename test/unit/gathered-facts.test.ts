import { describe, expect, it } from "vitest";
import {
  FactsNeeded,
  gatherScript,
  hostFacts,
  parseGathered,
} from "../../engine/facts/gathered.js";

const output = [
  "@os",
  'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
  'VERSION_ID="12"',
  "VERSION_CODENAME=bookworm",
  "ID=debian",
  "@kernel",
  "6.1.0-18-amd64",
  "x86_64",
  "@hostname",
  "auth",
  "auth.lab",
  "@init",
  "systemd",
  "systemd 252 (252.39-1~deb12u2)",
  "@addresses",
  "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever",
  "2: eth0    inet 10.77.1.12/24 scope global eth0\\       valid_lft forever",
  "2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever",
  "@tpm",
  "tcti environment swtpm:host=127.0.0.1,port=2321",
  "rc 0",
  "TPM2_PT_FAMILY_INDICATOR:",
  "  raw: 0x322E3000",
  '  value: "2.0"',
  "TPM2_PT_MANUFACTURER:",
  "  raw: 0x49424D00",
  '  value: "IBM"',
  "",
].join("\n");

describe("gathered facts", () => {
  it("reads the OS, init system, addresses and TPM from one script's output", () => {
    const { base, packages } = parseGathered(output);
    expect(base.os).toEqual({
      id: "debian",
      versionId: "12",
      codename: "bookworm",
      prettyName: "Debian GNU/Linux 12 (bookworm)",
      idLike: [],
    });
    expect(base.fqdn).toBe("auth.lab");
    expect(base.init).toEqual({ kind: "systemd", version: 252 });
    expect(base.addresses.ipv4).toEqual(["10.77.1.12"]);
    expect(base.addresses.ipv6).toEqual(["fe80::1"]);
    expect(base.addresses.interfaces.map((i) => i.name)).toEqual(["lo", "eth0"]);
    expect(base.tpm).toMatchObject({ kind: "present", source: "environment", manufacturer: "IBM" });
    expect(packages).toBeUndefined();
  });

  it("tells a host without a TPM from one whose TPM does not answer", () => {
    const absent = parseGathered(output.replace(/@tpm[\s\S]*/, "@tpm\ntcti  \n"));
    expect(absent.base.tpm.kind).toBe("absent");
    const silent = parseGathered(
      output.replace(/@tpm[\s\S]*/, "@tpm\ntcti device device:/dev/tpmrm0\nrc 1\nERROR: no TPM\n"),
    );
    expect(silent.base.tpm).toMatchObject({ kind: "silent", tcti: "device:/dev/tpmrm0" });
  });

  it("lists only installed packages, and asks for them when they were not gathered", () => {
    const gathered = parseGathered(`${output}@packages\nnginx\t1.22.1-9\tii \nold\t1.0\trc \n`);
    const facts = hostFacts(gathered);
    expect(facts.package("nginx")).toEqual({
      kind: "installed",
      name: "nginx",
      version: "1.22.1-9",
    });
    expect(facts.package("old")).toEqual({ kind: "absent" });
    expect(() => hostFacts(parseGathered(output)).package("nginx")).toThrow(FactsNeeded);
  });

  it("queries packages only when asked", () => {
    expect(gatherScript({ packages: false })).not.toContain("dpkg-query");
    expect(gatherScript({ packages: true })).toContain("dpkg-query");
  });
});
