import { existsSync, readFileSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import { hostPath, labInventoryFile, omensPlay, results, sshRoot } from "../helpers/lab.js";

const inventory = labInventoryFile();
const play = (...extra: string[]) =>
  omensPlay([
    "test/fixtures/cases/b08-handlers.ts",
    "-i",
    inventory,
    "--retry-file",
    "/tmp/omens-b08.retry",
    ...extra,
  ]);

describe("B08: handlers notified before a later failure", () => {
  beforeEach(() => {
    sshRoot(
      "auth",
      "rm -rf /srv/omens-b08 /var/lib/omens/owed-handlers && mkdir -p /srv/omens-b08 && printf 'v=1\\n' > /srv/omens-b08/app.conf",
    );
  });

  it("without force, the handler does not run and the output lists it as notified, not run", async () => {
    const run = await play();
    expect(run.code).toBe(2);
    expect(run.stdout).toContain("notified, not run: restart demo");
    expect(existsSync(hostPath("auth", "/srv/omens-b08/restarted"))).toBe(false);
    expect(readFileSync(hostPath("auth", "/srv/omens-b08/app.conf"), "utf8")).toBe("v=2\n");
  });

  it("with --force-handlers, the handler runs after the failure and the run still fails", async () => {
    const run = await play("--force-handlers", "--json");
    expect(run.code).toBe(2);
    expect(existsSync(hostPath("auth", "/srv/omens-b08/restarted"))).toBe(true);
    expect(run.recap.auth).toMatchObject({ failed: 1, changed: 2 });
    expect(results(run, "auth").map((r) => `${r.task}:${r.status}`)).toEqual([
      "copy /srv/omens-b08/app.conf:changed",
      "a task that fails:failed",
      "restart demo:changed",
    ]);
  });

  it("the next run owes the handler a failed run did not get to, runs it though nothing changes, and only once", async () => {
    const restarted = hostPath("auth", "/srv/omens-b08/restarted");
    expect((await play()).code).toBe(2);
    expect(existsSync(restarted)).toBe(false);
    expect(sshRoot("auth", "cat /var/lib/omens/owed-handlers/*")).toBe("auth\trestart demo\n");

    const check = await play("--check", "--json");
    // The handler is a command, which check mode reports as skipped rather than run.
    expect(results(check, "auth").map((r) => r.task)).toContain("restart demo");
    expect(existsSync(restarted)).toBe(false);

    sshRoot("auth", "touch /srv/omens-b08/pass");
    const second = await play("--json");
    expect(second.code).toBe(0);
    expect(results(second, "auth").map((r) => `${r.task}:${r.status}`)).toEqual([
      "copy /srv/omens-b08/app.conf:ok",
      "a task that fails:ok",
      "restart demo:changed",
    ]);
    expect(
      second.events.some(
        (e) =>
          e.kind === "warning" &&
          String(e.message).includes("an earlier run notified restart demo"),
      ),
    ).toBe(true);
    expect(existsSync(restarted)).toBe(true);
    expect(sshRoot("auth", "test -e /var/lib/omens/owed-handlers && echo left || echo gone")).toBe(
      "gone\n",
    );

    sshRoot("auth", "rm /srv/omens-b08/restarted");
    const third = await play("--json");
    expect(results(third, "auth").map((r) => `${r.task}:${r.status}`)).toEqual([
      "copy /srv/omens-b08/app.conf:ok",
      "a task that fails:ok",
    ]);
    expect(existsSync(restarted)).toBe(false);
  });

  it("a task that fails never notifies", async () => {
    // The copy cannot replace a folder, so the notifying task itself fails.
    sshRoot("auth", "rm -f /srv/omens-b08/app.conf && mkdir /srv/omens-b08/app.conf");
    const run = await play("--force-handlers", "--json");
    expect(run.code).toBe(2);
    expect(results(run, "auth")[0]).toMatchObject({ status: "failed" });
    expect(existsSync(hostPath("auth", "/srv/omens-b08/restarted"))).toBe(false);
  });
});

describe("a handler that fails", () => {
  const chain = (...extra: string[]) =>
    omensPlay(["test/fixtures/cases/handler-chain.ts", "-i", inventory, "--json", ...extra]);
  beforeEach(() => {
    sshRoot(
      "auth",
      "rm -rf /srv/omens-chain /var/lib/omens/owed-handlers && mkdir -p /srv/omens-chain",
    );
  });

  it("fails the host: the handlers after it do not run and stay owed to the next run", async () => {
    const run = await chain();
    expect(run.code).toBe(2);
    expect(results(run, "auth").map((r) => `${r.task}:${r.status}`)).toEqual([
      "copy /srv/omens-chain/app.conf:changed",
      "restart that fails:failed",
    ]);
    expect(run.events).toContainEqual(
      expect.objectContaining({
        kind: "handlers-pending",
        host: "auth",
        handlers: ["reload after it"],
      }),
    );
    expect(existsSync(hostPath("auth", "/srv/omens-chain/reloaded"))).toBe(false);

    sshRoot("auth", "touch /srv/omens-chain/pass");
    const next = await chain();
    expect(next.code).toBe(0);
    expect(results(next, "auth").map((r) => `${r.task}:${r.status}`)).toEqual([
      "copy /srv/omens-chain/app.conf:ok",
      "restart that fails:changed",
      "reload after it:changed",
    ]);
    expect(existsSync(hostPath("auth", "/srv/omens-chain/reloaded"))).toBe(true);
  });
});
