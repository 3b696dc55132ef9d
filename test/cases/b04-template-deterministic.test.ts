import { execFileSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  hostPath,
  lab,
  labInventoryFile,
  omensPlay,
  omensPlayWith,
  results,
  ROOT,
  sshRoot,
  type PlayRun,
} from "../helpers/lab.js";

const fixture = join(ROOT, "test/fixtures/cases/b04");
const motd = () => readFileSync(hostPath("auth", "/srv/omens-b04/motd"));
const restarts = () => readFileSync(hostPath("auth", "/srv/omens-b04/restarts"), "utf8");

/**
 * A second checkout of the playbook folder, owned by another user (nobody), with its own copy
 * of the lab's SSH key and inventory so that user can reach the lab.
 */
function secondClone(): { dir: string; inventory: string } {
  const dir = mkdtempSync(join(tmpdir(), "omr-b04-clone-"));
  cpSync(fixture, dir, { recursive: true });
  const playbook = join(dir, "playbook.ts");
  const engine = join(ROOT, "engine/index.js");
  writeFileSync(
    playbook,
    readFileSync(playbook, "utf8").replace("../../../../engine/index.js", engine),
  );
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  const info = lab();
  cpSync(info.key, join(dir, "id_ed25519"));
  cpSync(info.knownHosts, join(dir, "known_hosts"));
  const inventory = join(dir, "lab.yaml");
  writeFileSync(
    inventory,
    readFileSync(labInventoryFile(), "utf8")
      .replace(info.key, join(dir, "id_ed25519"))
      .replace(info.knownHosts, join(dir, "known_hosts")),
  );
  chmodSync(dir, 0o755);
  execFileSync("chown", ["-R", "nobody:nogroup", dir]);
  return { dir, inventory };
}

describe("B04: a template's managed header does not vary between runs", () => {
  let first: PlayRun;
  let second: PlayRun;
  let bytes: Buffer;
  let cloneDir = "";

  beforeAll(async () => {
    sshRoot("auth", "rm -rf /srv/omens-b04 && mkdir -p /srv/omens-b04");
    first = await omensPlay([join(fixture, "playbook.ts"), "-i", labInventoryFile(), "--json"]);
    bytes = motd();
    const clone = secondClone();
    cloneDir = clone.dir;
    const later = new Date(Date.now() + 3600_000);
    utimesSync(join(clone.dir, "motd.hbs"), later, later);
    second = await omensPlayWith(
      ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"],
      [join(clone.dir, "playbook.ts"), "-i", clone.inventory, "--json"],
      { HOME: clone.dir, USER: "nobody", LOGNAME: "nobody", TMPDIR: clone.dir },
    );
  });

  // The clone holds a copy of the lab's private key.
  afterAll(() => rmSync(cloneDir, { recursive: true, force: true }));

  it("run 1 reports changed and runs the handler once", () => {
    expect(first.code, first.stderr).toBe(0);
    expect(results(first, "auth").map((r) => `${r.task}:${r.status}`)).toEqual([
      "template /srv/omens-b04/motd:changed",
      "restart demo:changed",
    ]);
    expect(bytes.toString()).toBe("# Managed by Omens; local edits are overwritten\nsite=demo\n");
  });

  it("run 2, as another user from a second clone with a touched template, is ok and runs no handler", () => {
    expect(second.code, second.stderr).toBe(0);
    expect(results(second, "auth").map((r) => `${r.task}:${r.status}`)).toEqual([
      "template /srv/omens-b04/motd:ok",
    ]);
    expect(restarts()).toBe("restarted\n");
    expect(motd().equals(bytes)).toBe(true);
  });
});
