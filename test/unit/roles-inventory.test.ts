import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { loadInventory } from "../../engine/inventory/load.js";
import { compileHost } from "../../engine/runner/compile.js";
import type { Playbook } from "../../engine/dsl/playbook.js";
import sprint1 from "../../playbooks/sprint1-foundation.js";
import sprint2 from "../../playbooks/sprint2-integration.js";

const ROOT = resolve(import.meta.dirname, "../..");
const books: [string, Playbook][] = [
  ["playbooks/sprint1-foundation.ts", sprint1],
  ["playbooks/sprint2-integration.ts", sprint2],
];

/** Compiles every play of a playbook for every host it selects, as a run does before connecting. */
function compileAll(inventoryFile: string, [file, book]: [string, Playbook]) {
  const inventory = loadInventory(inventoryFile);
  return book.plays.flatMap((p) =>
    (inventory.groups.get(p.hosts) ?? [p.hosts]).map((name) => {
      const host = inventory.hosts.get(name);
      if (!host) throw new Error(`no host ${name} for play ${p.hosts}`);
      return { play: p.name, host: name, compiled: compileHost(p, host, join(ROOT, file)) };
    }),
  );
}

describe("the sprint playbooks against the shipped inventories", () => {
  it.each(["inventory/lab.yaml", "inventory/production.yaml"])(
    "%s gives every role on every host the variables its schema asks for",
    (inventory) => {
      for (const book of books) {
        const compiled = compileAll(join(ROOT, inventory), book);
        expect(compiled.length).toBeGreaterThan(0);
        for (const c of compiled) expect(c.compiled.tasks.length).toBeGreaterThan(0);
      }
    },
  );

  it("puts each play on the hosts the stack needs", () => {
    const hosts = compileAll(join(ROOT, "inventory/lab.yaml"), books[0]!).map(
      (c) => `${c.play}: ${c.host}`,
    );
    expect(hosts).toEqual([
      "TPM validation: spire",
      "TPM validation: auth",
      "TPM validation: ca",
      "SPIRE server: spire",
      "step-ca: ca",
      "OpenBao: spire",
      "SPIRE agents: auth",
      "SPIRE agents: ca",
    ]);
  });

  it("names the host, the role and the variable when an inventory value has the wrong type", () => {
    const text = readFileSync(join(ROOT, "inventory/lab.yaml"), "utf8").replace(
      "vars: { devidCommonName: auth.funlab.casa,",
      "vars: { devidCommonName: auth.funlab.casa, spireServerPort: eighty-one,",
    );
    const file = join(mkdtempSync(join(tmpdir(), "omens-inv-")), "lab.yaml");
    writeFileSync(file, text);
    expect(() => compileAll(file, books[0]!)).toThrow(
      /role spire-agent: variable "spireServerPort" for host auth must be integer \(got "eighty-one", from host auth/,
    );
  });

  it("points at the line inside a variable where a nested value has the wrong type", () => {
    const text = readFileSync(join(ROOT, "inventory/lab.yaml"), "utf8");
    const broken = text.replace("selectors: [unix:uid:0]", "selectors: unix:uid:0");
    expect(broken).not.toBe(text);
    const line = broken.split("\n").findIndex((l) => l.includes("selectors: unix:uid:0")) + 1;
    const file = join(mkdtempSync(join(tmpdir(), "omens-inv-")), "lab.yaml");
    writeFileSync(file, broken);
    expect(() => compileAll(file, books[0]!)).toThrow(
      `variable "spireEntries[1].selectors" for host spire must be array (got "unix:uid:0", from group servers (${file}:${line}))`,
    );
  });

  it("reports the first of several problems and says how many more lint lists", () => {
    const text = readFileSync(join(ROOT, "inventory/lab.yaml"), "utf8");
    const broken = text
      .replace("selectors: [unix:uid:0]", "selectors: unix:uid:0")
      .replace("selectors: [unix:user:step]", "selectors: unix:user:step");
    const file = join(mkdtempSync(join(tmpdir(), "omens-inv-")), "lab.yaml");
    writeFileSync(file, broken);
    expect(() => compileAll(file, books[0]!)).toThrow(
      /variable "spireEntries\[0\]\.selectors" for host spire must be array .*; 1 more problem\(s\): omens-play lint lists them all$/,
    );
  });

  it("a missing variable names the near name the inventory sets, with its line", () => {
    const text = readFileSync(join(ROOT, "inventory/lab.yaml"), "utf8");
    const broken = text.replace("openbaoApiAddr:", "openbaoApiAdr:");
    expect(broken).not.toBe(text);
    const line = broken.split("\n").findIndex((l) => l.includes("openbaoApiAdr:")) + 1;
    const file = join(mkdtempSync(join(tmpdir(), "omens-inv-")), "lab.yaml");
    writeFileSync(file, broken);
    expect(() => compileAll(file, books[0]!)).toThrow(
      new RegExp(
        `variable "openbaoApiAddr" is missing for host \\w+; the inventory sets "openbaoApiAdr" in group \\w+ \\(${file.replaceAll("/", "\\/")}:${line}\\): misspelt\\?`,
      ),
    );
  });

  it("a value outside a union of literals is one problem that names the allowed values", () => {
    const text = readFileSync(join(ROOT, "inventory/lab.yaml"), "utf8");
    const broken = text.replace("spireAgentAttestor: join_token", "spireAgentAttestor: join-token");
    expect(broken).not.toBe(text);
    const file = join(mkdtempSync(join(tmpdir(), "omens-inv-")), "lab.yaml");
    writeFileSync(file, broken);
    expect(() => compileAll(file, books[0]!)).toThrow(
      /variable "spireAgentAttestor" for host \w+ must be one of "join_token", "tpm_devid" \(got "join-token", from [^;]*\)$/,
    );
  });

  it("names a key missing from an entry of a variable with its path and the entry's line", () => {
    const text = readFileSync(join(ROOT, "inventory/lab.yaml"), "utf8");
    const broken = text.replace("selectors: [unix:uid:0]", "selectros: [unix:uid:0]");
    const lines = broken.split("\n");
    const entry = lines.findIndex((l) => l.includes("workload/auth-admin")) + 1;
    const file = join(mkdtempSync(join(tmpdir(), "omens-inv-")), "lab.yaml");
    writeFileSync(file, broken);
    expect(() => compileAll(file, books[0]!)).toThrow(
      `variable "spireEntries[1].selectors" is missing for host spire (in the value from group servers (${file}:${entry}))`,
    );
  });

  it("refuses a lab software key beside production CA certificates before any host is contacted", () => {
    const text = readFileSync(join(ROOT, "inventory/production.yaml"), "utf8").replace(
      /stepCaSigningKey:\n\s+kind: yubikey\n\s+key: .*\n\s+pinFile: .*/,
      "stepCaSigningKey: { kind: lab-software }",
    );
    const file = join(mkdtempSync(join(tmpdir(), "omens-inv-")), "production.yaml");
    writeFileSync(file, text);
    expect(() => compileAll(file, books[0]!)).toThrow(
      /role step-ca: a lab-software key never goes with production certificates/,
    );
  });
});
