import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LocalConnection } from "../../engine/connection/local.js";
import { announceFactReads } from "../../engine/facts/prefetch.js";
import { HostReader } from "../../engine/facts/reader.js";
import { applyOps } from "../../engine/runner/apply.js";

// Real files and a real /bin/sh on this machine, through the local connection.
const where = { host: "local" };
const quiet = { command: () => undefined, output: () => undefined };
const task = (module: string, args: Record<string, unknown>) => ({
  module: { name: module },
  args,
});

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "omens-facts-"));
  mkdirSync(join(dir, "etc"));
  writeFileSync(join(dir, "etc/a.conf"), "a=1\n");
  writeFileSync(join(dir, "etc/limits"), "soft 1\n");
  const connection = new LocalConnection("local", undefined, false);
  const reader = () => new HostReader(connection, where, undefined);
  return { dir, connection, reader };
}

describe("facts read ahead", () => {
  it("stats and reads every announced path in the first read, then answers from memory", async () => {
    const { dir, connection, reader } = setup();
    announceFactReads(connection, [
      task("file", { path: join(dir, "etc") }),
      task("copy", { dest: join(dir, "etc/a.conf") }),
      task("lineinfile", { path: join(dir, "etc/limits") }),
      task("command", { creates: join(dir, "missing") }),
    ]);
    const first = await reader().stat([join(dir, "etc")]);
    expect(first.get(join(dir, "etc"))?.kind).toBe("directory");
    expect(connection.commandCount).toBe(1);
    const conf = (await reader().stat([join(dir, "etc/a.conf")])).get(join(dir, "etc/a.conf"));
    expect(conf).toMatchObject({ kind: "file", size: 4 });
    const limits = await reader().statWithContent(join(dir, "etc/limits"));
    expect(limits.content?.toString()).toBe("soft 1\n");
    expect((await reader().stat([join(dir, "missing")])).get(join(dir, "missing"))?.kind).toBe(
      "absent",
    );
    expect(connection.commandCount).toBe(1);
  });

  it("reads a path again after an op changed it, and only what the op may have changed", async () => {
    const { dir, connection, reader } = setup();
    const conf = join(dir, "etc/a.conf");
    announceFactReads(connection, [task("copy", { dest: conf }), task("file", { path: dir })]);
    await reader().stat([conf]);
    const write = { kind: "write" as const, path: conf, content: Buffer.from("a=2\nb=3\n") };
    await applyOps(connection, [write], where, undefined, quiet);
    const count = connection.commandCount;
    expect((await reader().stat([conf])).get(conf)).toMatchObject({ kind: "file", size: 8 });
    expect(connection.commandCount).toBe(count + 1);
  });

  it("forgets everything after a command ran", async () => {
    const { dir, connection, reader } = setup();
    const conf = join(dir, "etc/a.conf");
    announceFactReads(connection, [task("stat", { path: conf })]);
    await reader().stat([conf]);
    const exec = { kind: "exec" as const, command: `rm -f ${conf}` };
    await applyOps(connection, [exec], where, undefined, quiet);
    expect((await reader().stat([conf])).get(conf)?.kind).toBe("absent");
  });
});
