import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { hostPath, omensPlay, results, sshRoot } from "../helpers/lab.js";
import { pinnedLabInventory } from "./roles-lab.js";

// nginx-jwks checks a new server block with `nginx -t` before it installs it: a block that does
// not pass never reaches the running nginx, which keeps serving the keys.

const SPRINT1 = "playbooks/sprint1-foundation.ts";
const SPRINT2 = "playbooks/sprint2-integration.ts";
const SITE = "/etc/nginx/sites-available/omens-jwks.conf";
let inventory = "";

const serving = (port: number) =>
  sshRoot(
    "spire",
    `curl -sS --fail --cacert /etc/nginx/tls/step-root.crt --resolve spire.lab:${port}:127.0.0.1 https://spire.lab:${port}/keys`,
  );

beforeAll(async () => {
  inventory = pinnedLabInventory();
  if (existsSync(hostPath("spire", SITE))) return;
  for (const book of [SPRINT1, SPRINT2]) {
    const run = await omensPlay([book, "-i", inventory, "--json"]);
    expect(run.code, run.stderr).toBe(0);
  }
}, 900_000);

describe("nginx-jwks: a candidate that nginx -t refuses is never installed", () => {
  it("keeps the running config and keeps serving, then converges once the cause is gone", async () => {
    const site = readFileSync(hostPath("spire", SITE), "utf8");
    const pid = sshRoot("spire", "systemctl show -p MainPID --value nginx");
    expect(JSON.parse(serving(8444)).keys.length).toBeGreaterThan(0);
    const moved = join(mkdtempSync(join(tmpdir(), "omens-nginx-")), "lab.yaml");
    writeFileSync(
      moved,
      readFileSync(inventory, "utf8").replace(
        "        jwksDnsNames: [spire.lab, spire.funlab.casa]\n",
        "        jwksDnsNames: [spire.lab, spire.funlab.casa]\n        jwksPort: 8445\n",
      ),
    );
    // A file the new block needs is missing, so nginx -t fails on the candidate.
    sshRoot("spire", "mv /etc/nginx/mime.types /etc/nginx/mime.types.away");
    try {
      const run = await omensPlay([SPRINT2, "-i", moved, "--json", "--limit", "spire"]);
      expect(run.code).toBe(2);
      const failed = results(run, "spire").find((r) => r.status === "failed");
      expect(failed?.task).toBe("nginx-jwks: nginx -t accepts the candidate");
      expect(failed?.error).toContain("mime.types");
      expect(readFileSync(hostPath("spire", SITE), "utf8")).toBe(site);
      expect(sshRoot("spire", "systemctl show -p MainPID --value nginx")).toBe(pid);
      expect(JSON.parse(serving(8444)).keys.length).toBeGreaterThan(0);
    } finally {
      sshRoot("spire", "mv /etc/nginx/mime.types.away /etc/nginx/mime.types");
    }
    const back = await omensPlay([SPRINT2, "-i", inventory, "--json", "--limit", "spire"]);
    expect(back.code, back.stderr).toBe(0);
    const changed = results(back, "spire")
      .filter((r) => r.status === "changed")
      .map((r) => r.task);
    expect(changed).toEqual(["nginx-jwks: candidate server block"]);
    expect(readFileSync(hostPath("spire", SITE), "utf8")).toBe(site);
  }, 300_000);
});
