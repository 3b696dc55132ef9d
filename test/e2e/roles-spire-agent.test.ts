import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { hostPath, omensPlay, results, ROOT, sshRoot } from "../helpers/lab.js";
import { pinnedLabInventory } from "./roles-lab.js";

// Case B14: an agent that already holds a valid SVID must never be sent back through
// join_token attestation with its spent token, and must keep its data directory.

const SPRINT1 = "playbooks/sprint1-foundation.ts";
const DATA = "/var/lib/spire/agent/agent-data.json";
let inventory = "";

const agentIds = () =>
  sshRoot("spire", "spire-server agent list -socketPath /run/spire/server/api.sock -output json")
    .match(/spire\/agent\/join_token\/[0-9a-f-]+/g)
    ?.sort() ?? [];

beforeAll(async () => {
  inventory = pinnedLabInventory();
  if (!existsSync(hostPath("auth", DATA))) {
    const run = await omensPlay([SPRINT1, "-i", inventory, "--json"]);
    expect(run.code, run.stderr).toBe(0);
  }
}, 600_000);

describe("B14: a join-token agent with a cached SVID is upgraded in place", () => {
  it("re-runs the role without a new token, keeps agent data, restarts once and leaks no token", async () => {
    const spent = readFileSync(hostPath("auth", "/etc/spire/agent/join_token"), "utf8").trim();
    expect(spent).toMatch(/\S{8,}/);
    const idsBefore = agentIds();
    const svidBefore = JSON.parse(readFileSync(hostPath("auth", DATA), "utf8")) as object;
    // An upgrade-style change: the agent's configuration differs, so the role restarts it.
    const changed = join(mkdtempSync(join(tmpdir(), "omens-b14-")), "lab.yaml");
    writeFileSync(
      changed,
      readFileSync(inventory, "utf8").replace(
        "    agents:\n",
        "    agents:\n      vars: { spireAgentLogLevel: WARN }\n",
      ),
    );
    const run = await omensPlay([SPRINT1, "-i", changed, "--json", "-vvv", "--limit", "auth"]);
    expect(run.code, run.stdout.slice(-3000) + run.stderr).toBe(0);

    const auth = results(run, "auth");
    const token = auth.find((r) => r.task.startsWith("spire-agent: a join token for auth"));
    expect(token?.status).toBe("skipped");
    expect(auth.filter((r) => r.task === "spire-agent: restart").map((r) => r.status)).toEqual([
      "changed",
    ]);
    expect(auth.find((r) => r.task === "spire-agent: healthy")?.status).toBe("ok");
    // Same agent identity on the server: no new attestation happened.
    expect(agentIds()).toEqual(idsBefore);
    expect(existsSync(hostPath("auth", DATA))).toBe(true);
    expect(Object.keys(JSON.parse(readFileSync(hostPath("auth", DATA), "utf8")) as object)).toEqual(
      Object.keys(svidBefore),
    );
    for (const file of ["/etc/spire/agent/agent.conf", "/etc/systemd/system/spire-agent.service"])
      expect(readFileSync(hostPath("auth", file), "utf8")).not.toContain(spent);
    expect(run.stdout + run.stderr).not.toContain(spent);

    const back = await omensPlay([SPRINT1, "-i", inventory, "--json", "--limit", "auth"]);
    expect(back.code, back.stderr).toBe(0);
  }, 300_000);

  it("names a spent token as the cause when an agent without its cache is started with it", async () => {
    sshRoot(
      "auth",
      `systemctl stop spire-agent; mv ${DATA} ${DATA}.saved; systemctl start spire-agent || true`,
    );
    try {
      const gate = join(mkdtempSync(join(tmpdir(), "omens-b14-")), "gate.mts");
      writeFileSync(
        gate,
        [
          `import { definePlaybook, play } from ${JSON.stringify(join(ROOT, "engine/index.js"))};`,
          `import { agentHealth } from ${JSON.stringify(join(ROOT, "roles/spire-agent/index.js"))};`,
          `export default definePlaybook("gate", [play("auth", { tasks: [agentHealth({ spireAgentSocket: "/run/spire/agent/api.sock" })] })]);`,
        ].join("\n"),
      );
      const run = await omensPlay([gate, "-i", inventory, "--json"]);
      expect(run.code).toBe(2);
      expect(results(run, "auth")[0]?.error).toContain(
        "join token does not exist or has already been used",
      );
    } finally {
      // The failed starts above count against systemd's start limit (5 in 10 s by default).
      sshRoot(
        "auth",
        `systemctl stop spire-agent; mv ${DATA}.saved ${DATA}; systemctl reset-failed spire-agent; systemctl start spire-agent`,
      );
    }
  });
});
