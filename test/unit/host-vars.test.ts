import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { copy, play, type Play } from "../../engine/index.js";
import { OmensError } from "../../engine/errors.js";
import { loadInventory } from "../../engine/inventory/load.js";
import { compileHost } from "../../engine/runner/compile.js";

// A play on one host reads another host's variables, as Ansible's hostvars lets it: the SPIRE
// server's settings, from the play of an agent host that delegates to the server.

const dir = mkdtempSync(join(tmpdir(), "omens-hostvars-"));
const inventoryFile = join(dir, "inventory.yaml");
writeFileSync(
  inventoryFile,
  [
    "all:",
    "  vars:",
    "    serverHost: spire",
    "    serverPort: 8081",
    "  children:",
    "    servers:",
    "      hosts:",
    "        spire: { address: 127.0.0.1, vars: { serverPort: 9081 } }",
    "    agents:",
    "      hosts:",
    "        auth: { address: 127.0.0.1 }",
    "",
  ].join("\n"),
);
const inventory = loadInventory(inventoryFile);
const host = (name: string) => inventory.hosts.get(name)!;

/** A play on the agents that writes the server's port, read from the server host's vars. */
const serverPortPlay = (server: (vars: Record<string, unknown>) => string): Play =>
  play("agents", {
    vars: { logLevel: "DEBUG" },
    tasks: (vars, { hostVars }) => {
      const peer = hostVars(server(vars));
      return [
        copy({
          dest: "/tmp/server-port",
          content: `${String(peer.serverPort)} ${String(peer.logLevel)} ${String(peer.inventoryHostname)}\n`,
        }),
      ];
    },
  });

describe("hostVars in a play's tasks", () => {
  it("gives another host's inventory variables, its own overrides, and the play's vars", () => {
    const built = compileHost(
      serverPortPlay((v) => String(v.serverHost)),
      host("auth"),
      "hostvars.ts",
      undefined,
      inventory.hosts,
    );
    expect((built.tasks[0]?.task.args as { content: string }).content).toBe("9081 DEBUG spire\n");
  });

  it("gives the host itself for its own name", () => {
    const built = compileHost(
      serverPortPlay(() => "auth"),
      host("auth"),
      "hostvars.ts",
      undefined,
      inventory.hosts,
    );
    expect((built.tasks[0]?.task.args as { content: string }).content).toBe("8081 DEBUG auth\n");
  });

  it("fails the build at the play, for that host, naming the unknown host and the near name", () => {
    const bad = serverPortPlay(() => "spier");
    let error: unknown;
    try {
      compileHost(bad, host("auth"), "hostvars.ts", undefined, inventory.hosts);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(OmensError);
    const err = error as OmensError;
    expect(err.message).toBe('hostVars("spier"): the inventory has no host "spier"');
    expect(err.hint).toBe('did you mean "spire"?');
    expect(err.where).toMatchObject({ host: "auth", line: bad.where.line, file: bad.where.file });
  });
});
