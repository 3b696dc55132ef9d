import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  inventoryFile,
  labConnectionLines,
  setLink,
  timedPlay,
  unusedLabAddress,
} from "../helpers/conn.js";
import { hostPath, lab, labInventory, omensPlay, results, sshRoot } from "../helpers/lab.js";

// B12: a play whose hosts are all unreachable does not end the run; later plays for other
// hosts still run, and the exit code says "unreachable", not "failed".
function twoPlays(offline: string): string {
  return inventoryFile([
    "all:",
    "  user: root",
    ...labConnectionLines(3),
    "  children:",
    `    offline: { hosts: { ghost1: { ${offline} } } }`,
    "    online: { hosts: { box1: { connection: local } } }",
  ]);
}

async function runTwoPlays(offline: string) {
  const marker = join(mkdtempSync(join(tmpdir(), "omens-b12-")), "play2");
  const run = await timedPlay(
    ["test/fixtures/conn/b12-plays.ts", "-i", twoPlays(offline), "--json"],
    { OMENS_MARKER: marker },
  );
  return { run, marker };
}

describe("B12: unreachable hosts in one play", () => {
  it("a refused port: ghost1 is unreachable at once, play 2 still runs, exit code 4", async () => {
    const { run, marker } = await runTwoPlays("address: 127.0.0.1, port: 1");
    expect(run.code).toBe(4);
    expect(run.recap.ghost1).toMatchObject({ unreachable: 1 });
    expect(run.recap.box1).toMatchObject({ changed: 1, failed: 0 });
    expect(existsSync(marker)).toBe(true);
    const ghost = results(run, "ghost1")[0];
    expect(ghost?.error).toContain("ghost1");
    expect(ghost?.error).toContain("127.0.0.1:1");
    expect(run.ms).toBeLessThan(3000 + 5000);
  });

  it("a silent address in the lab's subnet: unreachable within the connect timeout", async () => {
    const { run, marker } = await runTwoPlays(`address: ${unusedLabAddress()}`);
    expect(run.code).toBe(4);
    expect(run.recap.ghost1).toMatchObject({ unreachable: 1 });
    expect(existsSync(marker)).toBe(true);
    expect(results(run, "ghost1")[0]?.error).toContain(unusedLabAddress());
    // 3 s connect timeout plus the engine's start-up; never the OS's minutes-long TCP retry.
    expect(run.ms).toBeLessThan(3000 + 6000);
  });

  it("a closed port on a lab host: that host unreachable, the others finish, exit code 4", async () => {
    const marker = "/srv/omens-conn/reached";
    for (const h of ["spire", "auth", "ca"] as const) sshRoot(h, "rm -rf /srv/omens-conn");
    const inventory = inventoryFile([
      "all:",
      "  user: root",
      ...labConnectionLines(3),
      "  children:",
      "    servers:",
      `      hosts: { spire: { address: ${lab().hosts.spire.address}, port: 2 } }`,
      "    agents:",
      `      hosts: { auth: { address: ${lab().hosts.auth.address} }, ca: { address: ${lab().hosts.ca.address} } }`,
    ]);
    sshRoot("auth", "mkdir -p /srv/omens-conn");
    sshRoot("ca", "mkdir -p /srv/omens-conn");
    const run = await omensPlay(["test/fixtures/conn/reach-all.ts", "-i", inventory, "--json"], {
      OMENS_MARKER: marker,
    });
    expect(run.code).toBe(4);
    expect(run.recap.spire).toMatchObject({ unreachable: 1, ok: 0, changed: 0 });
    for (const h of ["auth", "ca"] as const) {
      expect(run.recap[h]).toMatchObject({ ok: 1, changed: 1, failed: 0, unreachable: 0 });
      expect(existsSync(hostPath(h, marker))).toBe(true);
    }
  });
});

describe("a host that drops out mid-play", () => {
  afterEach(() => setLink("auth", "up"));

  it("gets no further tasks, handlers or plays; the others finish", async () => {
    const dir = "/srv/omens-drop";
    for (const h of ["spire", "auth", "ca"] as const) sshRoot(h, `rm -rf ${dir}`);
    const running = omensPlay(
      ["test/fixtures/conn/mid-play-drop.ts", "-i", labInventory(), "--json"],
      {
        OMENS_MARKER: dir,
      },
    );
    const deadline = Date.now() + 30_000;
    while (!existsSync(hostPath("auth", `${dir}/task1`)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    setLink("auth", "down");
    const run = await running;
    expect(run.code).toBe(4);
    expect(run.recap.auth).toMatchObject({ unreachable: 1 });
    for (const file of ["task3", "handler", "play2"])
      expect(existsSync(hostPath("auth", `${dir}/${file}`)), file).toBe(false);
    for (const h of ["spire", "ca"] as const) {
      expect(run.recap[h]).toMatchObject({ failed: 0, unreachable: 0 });
      for (const file of ["task1", "task3", "handler", "play2"])
        expect(existsSync(hostPath(h, `${dir}/${file}`)), `${h} ${file}`).toBe(true);
    }
  });
});
