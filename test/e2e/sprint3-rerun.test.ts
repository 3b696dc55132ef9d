import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  LAB_HOSTS,
  rebuildLab,
  results,
  sshRoot,
  type LabHost,
  type PlayRun,
} from "../helpers/lab.js";
import { expectClean, labBeforeSprint3, playJson } from "./roles-lab.js";

// Sprints 1 and 2 re-run after sprint 3 has moved every agent to tpm_devid. With the inventory
// still at the join_token phase the roles refuse, on each host, before writing anything; with
// the post-migration phase set, both sprints find nothing to change.

const SPRINT1 = "playbooks/sprint1-foundation.ts";
const SPRINT2 = "playbooks/sprint2-integration.ts";
const SPRINT3 = "playbooks/sprint3-migrate.ts";
const AGENT_SOCKET = "/run/spire/agent/api.sock";
const PROBE_USERS: Record<LabHost, string> = { spire: "openbao", auth: "root", ca: "step" };
let inventory = "";

const play = playJson;

function expectNothingChanged(run: PlayRun, what: string) {
  const changed = results(run).filter((r) => r.status === "changed");
  expect(changed, `${what}: ${JSON.stringify(changed, null, 1)}`).toEqual([]);
  for (const [host, counts] of Object.entries(run.recap))
    expect(counts.changed, `${what}: ${host}`).toBe(0);
}

/** Path, mode, owner and sha256 of every SPIRE config file and unit on the host. */
function configFiles(host: LabHost): string {
  return sshRoot(
    host,
    `cd / && for f in $(find etc/spire -type f | sort) etc/systemd/system/spire-*.service; do echo "$(stat -c '%n %a %U:%G' "$f") $(sha256sum < "$f")"; done`,
  );
}
const allConfigFiles = () => LAB_HOSTS.map((h) => `== ${h}\n${configFiles(h)}`).join("");

/** The guard's message for a host, from the failed task of a JSON run. */
function guardFailure(run: PlayRun, host: LabHost): string {
  const failed = results(run, host).filter((r) => r.status === "failed");
  expect(failed, `${host}: ${JSON.stringify(results(run, host), null, 1)}`).toHaveLength(1);
  const [only] = failed;
  expect(only?.task).toContain("the inventory keeps the attestation phase");
  return `${only?.reason ?? ""} ${only?.error ?? ""}`;
}

/** Every agent attests with tpm_devid, join_token is gone from the server, workloads get SVIDs. */
function expectPostMigration() {
  const listed = JSON.parse(
    sshRoot("spire", "spire-server agent list -socketPath /run/spire/server/api.sock -output json"),
  ) as { agents: { attestation_type: string }[] };
  expect(listed.agents.map((a) => a.attestation_type)).toEqual([
    "tpm_devid",
    "tpm_devid",
    "tpm_devid",
  ]);
  expect(sshRoot("spire", "cat /etc/spire/server/server.conf")).not.toContain(
    'NodeAttestor "join_token"',
  );
  for (const host of LAB_HOSTS) {
    const conf = sshRoot(host, "cat /etc/spire/agent/agent.conf");
    expect(conf, host).toContain('NodeAttestor "tpm_devid"');
    expect(conf, host).not.toContain("join_token");
    expect(sshRoot(host, "cat /etc/systemd/system/spire-agent.service"), host).toContain(
      "Environment=TPM2TOOLS_TCTI=",
    );
    sshRoot(
      host,
      `runuser -u ${PROBE_USERS[host]} -- spire-agent api fetch x509 -socketPath ${AGENT_SOCKET} >/dev/null`,
    );
  }
}

/** The lab inventory at the post-migration phase: agents and server on tpm_devid only. */
function postMigrationInventory(): string {
  const text = readFileSync(inventory, "utf8");
  const post = text
    .replace(/^(\s+)spireAgentAttestor: join_token$/m, "$1spireAgentAttestor: tpm_devid")
    .replace(/^(\s+)spireNodeAttestors: \[join_token\]$/m, "$1spireNodeAttestors: [tpm_devid]");
  const set = /^\s+(spireAgentAttestor: tpm_devid|spireNodeAttestors: \[tpm_devid\])$/gm;
  expect(post.match(set)).toHaveLength(2);
  const file = join(mkdtempSync(join(tmpdir(), "omens-post-")), "lab.yaml");
  writeFileSync(file, post);
  return file;
}

beforeAll(async () => {
  inventory = await labBeforeSprint3();
  expectClean(await play(SPRINT3, inventory), "sprint 3");
  expectPostMigration();
}, 900_000);

// These tests leave every agent on tpm_devid; later files expect a lab before sprint 3.
afterAll(rebuildLab, 300_000);

describe("sprints 1 and 2 after sprint 3", () => {
  it("with the inventory still at join_token, sprint 1 and 2 fail each host at the guard and change nothing", async () => {
    const before = allConfigFiles();
    for (const mode of [["--check"], []]) {
      const one = await play(SPRINT1, inventory, ...mode);
      expect(one.code, one.stderr).toBe(2);
      expectNothingChanged(one, `sprint 1 ${mode.join(" ")}`);
      for (const host of ["auth", "ca"] as const) {
        const why = guardFailure(one, host);
        expect(why).toContain(
          `${host}: /etc/spire/agent/agent.conf attests with NodeAttestor "tpm_devid"`,
        );
        expect(why).toContain("asks for join_token");
        expect(why).toContain("set spireAgentAttestor: tpm_devid");
        expect(why).toContain("stopped before writing anything");
      }
      const server = guardFailure(one, "spire");
      expect(server).toContain(
        'spire: /etc/spire/server/server.conf declares NodeAttestor "tpm_devid"',
      );
      expect(server).toContain("set spireNodeAttestors: [tpm_devid]");

      // The guard is no ordinary task: starting after it or skipping its tag still runs it.
      for (const past of [
        ["--start-at-task", "spire-agent: file /etc/spire", "--limit", "auth"],
        ["--skip-tags", "always", "--limit", "auth"],
      ]) {
        const bypass = await play(SPRINT1, inventory, ...mode, ...past);
        expect(bypass.code, `${past.join(" ")}\n${bypass.stderr}`).toBe(2);
        expectNothingChanged(bypass, `sprint 1 ${[...mode, ...past].join(" ")}`);
        expect(guardFailure(bypass, "auth")).toContain("stopped before writing anything");
      }

      const two = await play(SPRINT2, inventory, ...mode);
      expect(two.code, two.stderr).toBe(2);
      expectNothingChanged(two, `sprint 2 ${mode.join(" ")}`);
      expect(guardFailure(two, "spire")).toContain("set spireAgentAttestor: tpm_devid");
    }
    expect(allConfigFiles()).toBe(before);
    expectPostMigration();
  }, 600_000);

  it("with the post-migration phase in the inventory, sprint 1 and 2 check and run with changed=0", async () => {
    const post = postMigrationInventory();
    const before = allConfigFiles();
    for (const book of [SPRINT1, SPRINT2]) {
      const check = await play(book, post, "--check");
      expectClean(check, `${book} --check`);
      expectNothingChanged(check, `${book} --check`);
      const run = await play(book, post);
      expectClean(run, book);
      expectNothingChanged(run, book);
    }
    expect(allConfigFiles()).toBe(before);
    expectPostMigration();
  }, 600_000);
});
