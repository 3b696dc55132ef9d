import { readFileSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import {
  hostPath,
  LAB_HOSTS,
  labInventoryFile,
  omensPlay,
  results,
  sshRoot,
  type LabHost,
} from "../helpers/lab.js";

const inventory = labInventoryFile();
const play = (variant: string) =>
  omensPlay(
    [
      "test/fixtures/runner/facts.ts",
      "-i",
      inventory,
      "--json",
      "-v",
      "--retry-file",
      "/tmp/omr-facts.retry",
    ],
    { FACTS_VARIANT: variant },
  );
const facts = (host: LabHost) =>
  JSON.parse(readFileSync(hostPath(host, "/srv/omens-facts/facts.json"), "utf8")) as Record<
    string,
    unknown
  >;
const gathers = (run: { events: Record<string, unknown>[] }, host: string) =>
  run.events.filter(
    (e) => e.kind === "command" && e.host === host && String(e.command).startsWith("gather facts"),
  );

describe("gathered facts", () => {
  beforeEach(() => {
    for (const host of LAB_HOSTS)
      sshRoot(host, "rm -rf /srv/omens-facts && mkdir -p /srv/omens-facts");
  });

  it("match what the host says, typed, with the TPM reached through its TCTI", async () => {
    const run = await play("lazy");
    expect(run.code, run.stderr).toBe(0);
    for (const host of LAB_HOSTS) {
      const got = facts(host);
      const osRelease = sshRoot(
        host,
        ". /etc/os-release; echo $ID $VERSION_ID $VERSION_CODENAME",
      ).trim();
      expect(got.os).toMatchObject({
        id: osRelease.split(" ")[0],
        versionId: osRelease.split(" ")[1],
        codename: osRelease.split(" ")[2],
      });
      expect(got.hostname).toBe(sshRoot(host, "cat /proc/sys/kernel/hostname").trim());
      expect(got.kernel).toMatchObject({ release: sshRoot(host, "uname -r").trim() });
      expect(got.init).toEqual({
        kind: "systemd",
        version: Number(/systemd (\d+)/.exec(sshRoot(host, "systemctl --version"))?.[1]),
      });
      const address = sshRoot(host, "ip -4 -o addr show eth0").split(/\s+/)[3]?.split("/")[0];
      expect(got.ipv4).toEqual([address]);
      expect(got.tpm).toMatchObject({
        kind: "present",
        tcti: "swtpm:host=127.0.0.1,port=2321",
        source: "environment",
        family: "2.0",
      });
      expect(got.tpm2Tools).toEqual({
        kind: "installed",
        name: "tpm2-tools",
        version: sshRoot(host, "dpkg-query -W -f '${Version}' tpm2-tools"),
      });
      expect(got.missing).toEqual({ kind: "absent" });
    }
  });

  it("are gathered lazily, once per host for the run (again only to add packages)", async () => {
    const run = await play("lazy");
    for (const host of LAB_HOSTS) {
      expect(gathers(run, host).map((e) => e.command)).toEqual([
        "gather facts (os, kernel, hostname, init, addresses, tpm)",
        "gather facts (os, kernel, hostname, init, addresses, tpm, packages)",
      ]);
    }
    expect(results(run).filter((r) => r.task === "gather facts")).toEqual([]);
  });

  it("with gatherFacts, are gathered by one command at the start of the play", async () => {
    const run = await play("eager");
    expect(run.code, run.stderr).toBe(0);
    for (const host of LAB_HOSTS) {
      expect(gathers(run, host)).toHaveLength(1);
      expect(results(run, host)[0]).toMatchObject({ task: "gather facts", status: "ok" });
    }
  });
});
