import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import {
  hostPath,
  LAB_HOSTS,
  labInventoryFile,
  omensPlay,
  results,
  sshRoot,
  type LabHost,
  type PlayRun,
} from "../helpers/lab.js";

const inventory = labInventoryFile();
const readNow = (host: LabHost, name: string) =>
  readFileSync(hostPath(host, `/srv/omens-features/${name}`), "utf8");
// What the hosts' files held after the first run ("absent" when missing).
const afterFirst = new Map<string, string>();
const read = (host: LabHost, name: string) => {
  const value = afterFirst.get(`${host}/${name}`);
  if (value === undefined) throw new Error(`${host}: ${name} was absent after the first run`);
  return value;
};
const FILES = ["summary", "addresses", "count", "issued", "token", "registered"];
const play = () =>
  omensPlay([
    "test/fixtures/runner/features.ts",
    "-i",
    inventory,
    "--json",
    "--retry-file",
    "/tmp/omr-features.retry",
  ]);

describe("loops, retries, runOnce and delegateTo", () => {
  let first: PlayRun;
  let second: PlayRun;

  beforeAll(async () => {
    for (const host of LAB_HOSTS)
      sshRoot(host, "rm -rf /srv/omens-features && mkdir -p /srv/omens-features");
    first = await play();
    for (const host of LAB_HOSTS)
      for (const name of FILES) {
        try {
          afterFirst.set(`${host}/${name}`, readNow(host, name));
        } catch {
          // absent: read() says so
        }
      }
    for (const host of LAB_HOSTS) sshRoot(host, "rm /srv/omens-features/count");
    second = await play();
  });

  it("a loop reports each item with its label, and registers one result per item", () => {
    expect(first.code, first.stderr).toBe(0);
    const items = results(first, "auth").filter((r) => r.task === "three files");
    expect(items.map((r) => `${(r as { item?: string }).item ?? "-"}:${r.status}`)).toEqual([
      "a:changed",
      "b:changed",
      "c:changed",
      "-:changed",
    ]);
    expect(read("auth", "summary")).toBe("a:0600:true\nb:0640:true\nc:0644:true\nb-mode:0640\n");
    expect(sshRoot("auth", "stat -c %a /srv/omens-features/a /srv/omens-features/c")).toBe(
      "600\n644\n",
    );
  });

  it("items may come from the host's facts", () => {
    for (const host of LAB_HOSTS) {
      const address = sshRoot(host, "ip -4 -o addr show eth0").split(/\s+/)[3]?.split("/")[0];
      expect(read(host, "addresses")).toBe(`allow ${address}\n`);
    }
  });

  it("a second run changes no item", () => {
    const items = results(second, "auth").filter((r) => r.task === "three files");
    expect(items.map((r) => r.status)).toEqual(["ok", "ok", "ok", "ok"]);
  });

  it("retries until the condition holds, and fails once the retries are used up", () => {
    expect(read("spire", "count")).toBe("3\n");
    const retried = first.events.filter(
      (e) =>
        e.kind === "task-retry" &&
        e.host === "spire" &&
        e.task === "becomes ready on the third attempt",
    );
    expect(retried.map((e) => e.attempt)).toEqual([1, 2]);
    const never = results(first, "spire").find((r) => r.task === "never ready");
    expect(never).toMatchObject({ status: "failed", ignored: true });
    expect(never?.error).toContain("until: the condition did not hold after 2 attempts");
    expect(first.recap.spire).toMatchObject({ failed: 0, ignored: 1 });
    expect(results(first, "spire").find((r) => r.task === "three attempts were made")?.status).toBe(
      "ok",
    );
  });

  it("runOnce runs on the first host of the batch and registers its result on every host", () => {
    const issued = results(first).filter((r) => r.task === "issue one token");
    expect(issued.map((r) => r.host)).toEqual(["spire"]);
    const token = read("spire", "issued");
    expect(token).toMatch(/^[0-9a-f]{16}$/);
    for (const host of LAB_HOSTS) expect(read(host, "token")).toBe(`${token}\n`);
    expect(() => read("auth", "issued")).toThrow();
  });

  it("delegateTo runs the task on the server with each agent's variables", () => {
    expect(read("spire", "registered").split("\n").sort()).toEqual(["", "auth", "ca"]);
    expect(() => read("auth", "registered")).toThrow();
    const delegated = results(first).filter(
      (r) => r.task === "register on the server" && r.status === "changed",
    );
    expect(
      delegated.map((r) => `${r.host}->${(r as { delegate?: string }).delegate}`).sort(),
    ).toEqual(["auth->spire", "ca->spire"]);
    expect(second.code, second.stderr).toBe(0);
  });
});
