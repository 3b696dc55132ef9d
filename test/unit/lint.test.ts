import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import ajvDraft04 from "ajv-draft-04";
import Handlebars from "handlebars";
import { describe, expect, it } from "vitest";
import { loadPlaybook } from "../../engine/cli.js";
import { loadInventory } from "../../engine/inventory/load.js";
import { matchHosts } from "../../engine/inventory/patterns.js";
import { compileHost } from "../../engine/runner/compile.js";
import { preparePlaybook } from "../../engine/runner/run.js";
import { expandHost, expandLeniently, type LintTask } from "../../engine/lint/expand.js";
import type { Finding } from "../../engine/lint/finding.js";
import { formatSarif } from "../../engine/lint/format/sarif.js";
import { lint } from "../../engine/lint/lint.js";
import { LINT_RULE_IDS } from "../../engine/lint/rule-ids.js";
import { isNearMiss } from "../../engine/near-names.js";
import { describeNumericMode } from "../../engine/lint/rules/risky-octal.js";
import { isPlainSecretValue, isSecretName } from "../../engine/lint/rules/secrets.js";
import { configFormat } from "../../engine/lint/rules/templates.js";
import { typecheck } from "../../engine/lint/typecheck.js";
import { namesUsed } from "../../engine/lint/template-source.js";
import { typecheckInThread } from "../../engine/lint/typecheck-thread.js";

// The SARIF 2.1.0 schema is JSON Schema draft-04; ajv reads that dialect through ajv-draft-04.
const Ajv04 = ajvDraft04.default;
const root = resolve(import.meta.dirname, "../..");
const fixtures = join(root, "test/fixtures/lint");
const fixture = (name: string) => join(fixtures, name);
const inventory = fixture("inventory.yaml");

async function findings(playbook: string, inventories = [inventory]): Promise<Finding[]> {
  const report = await lint({ paths: [fixture(playbook)], inventories, typecheck: false });
  return report.findings;
}

/** The one finding each broken fixture must give: rule, file and line, and nothing else. */
const broken: {
  playbook: string;
  inventory?: string;
  rule: string;
  file: string;
  line?: number;
}[] = [
  { playbook: "command-changed.ts", rule: "command-changed", file: "command-changed.ts", line: 6 },
  { playbook: "block-loop.ts", rule: "command-changed", file: "block-loop.ts", line: 13 },
  { playbook: "risky-octal.ts", rule: "risky-octal", file: "risky-octal.ts", line: 8 },
  { playbook: "task-invalid.ts", rule: "task-invalid", file: "task-invalid.ts", line: 6 },
  {
    playbook: "task-invalid-delegate.ts",
    rule: "task-invalid",
    file: "task-invalid-delegate.ts",
    line: 7,
  },
  {
    playbook: "task-invalid-delegate-var.ts",
    inventory: "task-invalid-delegate-var.yaml",
    rule: "task-invalid",
    file: "task-invalid-delegate-var.yaml",
    line: 5,
  },
  { playbook: "playbook-load.ts", rule: "playbook-load", file: "playbook-load.ts", line: 5 },
  {
    playbook: "template-render.ts",
    rule: "template-render",
    file: "templates/undefined-var.txt.hbs",
    line: 2,
  },
  {
    playbook: "template-missing.ts",
    rule: "template-render",
    file: "template-missing.ts",
    line: 7,
  },
  {
    playbook: "template-parse.ts",
    rule: "template-parse",
    file: "templates/broken.hcl.hbs",
    line: 2,
  },
  {
    playbook: "template-parse-each.ts",
    rule: "template-parse",
    file: "templates/listeners.hcl.hbs",
    line: 5,
  },
  {
    playbook: "template-parse-each-lines.ts",
    rule: "template-parse",
    file: "templates/ports.hcl.hbs",
    line: 3,
  },
  {
    playbook: "template-parse-eof.ts",
    rule: "template-parse",
    file: "templates/unclosed.hcl.hbs",
    line: 6,
  },
  {
    playbook: "template-parse-json.ts",
    rule: "template-parse",
    file: "templates/broken.json.hbs",
    line: 3,
  },
  {
    playbook: "template-parse-json-comma.ts",
    rule: "template-parse",
    file: "templates/ports.json.hbs",
    line: 5,
  },
  {
    playbook: "template-parse-json-token.ts",
    rule: "template-parse",
    file: "templates/unquoted.json.hbs",
    line: 3,
  },
  {
    playbook: "template-nondeterministic.ts",
    rule: "template-nondeterministic",
    file: "templates/stamped.txt.hbs",
    line: 2,
  },
  { playbook: "secret-no-log.ts", rule: "secret-no-log", file: "secret-no-log.ts", line: 7 },
  {
    playbook: "handler-undefined.ts",
    rule: "handler-undefined",
    file: "handler-undefined.ts",
    line: 7,
  },
  { playbook: "handler-unused.ts", rule: "handler-unused", file: "handler-unused.ts", line: 6 },
  { playbook: "name-missing.ts", rule: "name-missing", file: "name-missing.ts", line: 6 },
  { playbook: "play-serial.ts", rule: "play-serial", file: "play-serial.ts", line: 5 },
  { playbook: "play-no-hosts.ts", rule: "play-no-hosts", file: "play-no-hosts.ts", line: 5 },
  {
    playbook: "play-no-hosts-term.ts",
    rule: "play-no-hosts",
    file: "play-no-hosts-term.ts",
    line: 5,
  },
  { playbook: "lint-skip.ts", rule: "lint-skip", file: "lint-skip.ts", line: 7 },
  {
    playbook: "clean.ts",
    inventory: "inventory-schema.yaml",
    rule: "inventory-schema",
    file: "inventory-schema.yaml",
    line: 6,
  },
  {
    playbook: "clean.ts",
    inventory: "role-vars.yaml",
    rule: "role-vars",
    file: "role-vars.yaml",
    line: 4,
  },
  {
    playbook: "clean.ts",
    inventory: "role-vars-type.yaml",
    rule: "role-vars",
    file: "role-vars-type.yaml",
    line: 8,
  },
  {
    playbook: "clean.ts",
    inventory: "role-vars-nested.yaml",
    rule: "role-vars",
    file: "role-vars-nested.yaml",
    line: 7,
  },
  {
    playbook: "role-vars-play-vars.ts",
    rule: "role-vars",
    file: "role-vars-play-vars.ts",
    line: 6,
  },
  {
    playbook: "clean.ts",
    inventory: "var-misspelt.yaml",
    rule: "var-misspelt",
    file: "var-misspelt.yaml",
    line: 8,
  },
  {
    playbook: "clean.ts",
    inventory: "secret-plain-var.yaml",
    rule: "secret-plain-var",
    file: "secret-plain-var.yaml",
    line: 11,
  },
];

describe("omens-play lint: one broken fixture per check", () => {
  for (const c of broken) {
    const label = c.inventory ? `${c.playbook} with ${c.inventory}` : c.playbook;
    it(`${label} gives exactly one ${c.rule} finding at ${c.file}:${c.line}`, async () => {
      const found = await findings(c.playbook, [fixture(c.inventory ?? "inventory.yaml")]);
      expect(found.map((f) => [f.rule, f.where.file, f.where.line])).toEqual([
        [c.rule, fixture(c.file), c.line],
      ]);
    });
  }

  it("covers every rule id", () => {
    const covered = new Set([...broken.map((c) => c.rule), "type-error"]);
    expect(LINT_RULE_IDS.filter((id) => !covered.has(id))).toEqual([]);
  });

  it("type-checks every fixture and finds only the type error of type-error.ts", () => {
    const files = readdirSync(fixtures)
      .filter((f) => f.endsWith(".ts"))
      .map(fixture);
    const found = typecheck(files);
    expect(found.map((f) => [f.rule, f.where.file, f.where.line, f.where.column])).toEqual([
      ["type-error", fixture("type-error.ts"), 4, 7],
    ]);
    expect(found[0]?.message).toContain("TS2322");
  }, 60_000);
});

describe("omens-play lint: type checking", () => {
  it("runs the compiler in a worker thread and gets the same findings", async () => {
    const result = await typecheckInThread([fixture("type-error.ts")]);
    expect(result.thread).toBe("worker");
    expect(result.findings.map((f) => [f.rule, f.where.line])).toEqual([["type-error", 4]]);
  }, 60_000);
});

describe("omens-play lint: what the findings say", () => {
  it("a numeric mode names the task, the 0o value and the string to write (B05)", async () => {
    const [finding] = await findings("risky-octal.ts");
    expect(finding?.message).toBe(
      'task "the shared folder": mode is the number 2755, which means 0o5303, not 0o2755; write mode: "2755"',
    );
  });

  it("a number from an octal literal suggests its octal digits", () => {
    expect(describeNumericMode("mode", 0o755)).toBe(
      'mode is the number 493 (0o755); modes are strings: write mode: "0755"',
    );
  });

  it("an undefined template variable names the template line and every host", async () => {
    const [finding] = await findings("template-render.ts");
    expect(finding?.message).toBe('template variable "siteOwner" is not defined');
    expect(finding?.where.column).toBe(9);
    expect(finding?.hosts).toEqual(["s1", "a1", "a2"]);
  });

  it("every undefined variable of a template is a finding at its own line", async () => {
    const found = await findings("template-render-several.ts");
    expect(found.map((f) => [f.message, f.where.line, f.where.column, f.hosts])).toEqual([
      ['template variable "siteOwner" is not defined', 3, 9, ["s1", "a1", "a2"]],
      ['template variable "siteAdmin" is not defined', 5, 9, ["s1", "a1", "a2"]],
    ]);
  });

  it("an undefined variable tested by #if, #each or #unless is a finding; one set to false is not", async () => {
    const found = await findings("template-render-block.ts");
    expect(found.map((f) => [f.message, f.where.line, f.where.column, f.hosts])).toEqual([
      ['template variable "debugMode" is not defined', 1, 7, ["a1", "a2"]],
      ['template variable "extraListeners" is not defined', 4, 9, ["s1", "a1", "a2"]],
      ['template variable "sitee" is not defined', 7, 11, ["s1", "a1", "a2"]],
    ]);
  });

  it("a misspelt inventory variable names the variable, the group and file, and the hosts", async () => {
    const [finding] = await findings("clean.ts", [fixture("role-vars.yaml")]);
    expect(finding?.message).toBe(
      'role demo: variable "site" is missing; the inventory sets "sitee" in group all (test/fixtures/lint/role-vars.yaml:4): misspelt?',
    );
    expect(finding?.hosts).toEqual(["s1", "a1", "a2"]);
  });

  it("a wrongly typed value inside a variable names its path and its own line", async () => {
    const [finding] = await findings("clean.ts", [fixture("role-vars-nested.yaml")]);
    expect(finding?.message).toBe(
      'role demo: variable "listeners[1].port" must be integer (got "8444", from group all (test/fixtures/lint/role-vars-nested.yaml:7))',
    );
    expect(finding?.where).toMatchObject({ line: 7, column: 9 });
    expect(finding?.hosts).toEqual(["s1", "a1", "a2"]);
  });

  it("a delegate read from an inventory variable is reported at that variable, by lint and by runs", async () => {
    const [finding] = await findings("task-invalid-delegate-var.ts", [
      fixture("task-invalid-delegate-var.yaml"),
    ]);
    expect(finding?.message).toBe(
      'variable "serverHost" (set in group all (test/fixtures/lint/task-invalid-delegate-var.yaml:5)) is "s2", which is not a host of the inventory; task "the agent is registered on the server" (test/fixtures/lint/task-invalid-delegate-var.ts:7) delegates to it',
    );
    const file = fixture("task-invalid-delegate-var.ts");
    const playbook = await loadPlaybook(file);
    const inventory = loadInventory(fixture("task-invalid-delegate-var.yaml"));
    expect(() => preparePlaybook(playbook, inventory, file)).toThrow(
      `delegates to "s2" (read from "serverHost", set in group all (${fixture("task-invalid-delegate-var.yaml")}:5)), which is not an inventory host`,
    );
  });

  it("a misspelt variable the role has a default for names the line, the role and the default", async () => {
    const [finding] = await findings("clean.ts", [fixture("var-misspelt.yaml")]);
    expect(finding?.message).toBe(
      'variable "prot" (set in group servers (test/fixtures/lint/var-misspelt.yaml:8)) is read by no role, play or template, but role demo declares "port"; it runs with the default 8081: misspelt?',
    );
    expect(finding?.hosts).toEqual(["s1"]);
  });

  it("near names: case, one edit, two for long names, a swap of neighbours counts once", () => {
    expect(isNearMiss("stepcaport", "stepCaPort")).toBe(true);
    expect(isNearMiss("prot", "port")).toBe(true);
    expect(isNearMiss("stepCaPrt", "stepCaPort")).toBe(true);
    expect(isNearMiss("spireAgentAtestr", "spireAgentAttestor")).toBe(true);
    expect(isNearMiss("host", "port")).toBe(false);
    expect(isNearMiss("devidKeyPath", "devidCertPath")).toBe(false);
  });

  /** Lints clean.ts against the fixture inventory with these lines added under all's vars. */
  const withVars = async (lines: string, playbook = "clean.ts", base = "inventory.yaml") => {
    const file = join(mkdtempSync(join(tmpdir(), "omens-lint-")), "inventory.yaml");
    const text = readFileSync(fixture(base), "utf8");
    writeFileSync(file, text.replace("  vars:\n", `  vars:\n${lines}`));
    const report = await lint({
      paths: [fixture(playbook)],
      inventories: [file],
      typecheck: false,
    });
    return {
      file,
      report,
      line: (needle: string) =>
        readFileSync(file, "utf8")
          .split("\n")
          .findIndex((l) => l.includes(needle)) + 1,
    };
  };

  it("a key missing from or unknown in a value inside a variable is named with its path and line", async () => {
    const { report, line } = await withVars("    listeners:\n      - prot: 8443\n");
    expect(report.findings.map((f) => [f.message, f.where.line])).toEqual([
      [
        expect.stringContaining(
          'variable "listeners[0].port" is missing (in the value from group all',
        ),
        line("- prot"),
      ],
      [expect.stringContaining('unknown key "listeners[0].prot" (from group all'), line("- prot")],
    ]);
  });

  it("var-misspelt reports every line that sets the name, also one a host overrides", async () => {
    const { file, report } = await withVars("    prot: 1\n", "clean.ts", "var-misspelt.yaml");
    expect(report.findings.map((f) => [f.rule, f.where.line, f.hosts])).toEqual([
      ["var-misspelt", 4, ["s1", "a1", "a2"]],
      ["var-misspelt", 9, ["s1"]],
    ]);
    expect(report.findings[0]?.where.file).toBe(file);
  });

  it("var-misspelt does not claim the default where the play passes the value", async () => {
    const { report } = await withVars("    prot: 1\n");
    const messages = report.findings.map((f) => [f.message, f.hosts]);
    // The servers' play runs demo() on its default; the agents' play passes port 9090.
    expect(messages).toEqual([[expect.not.stringContaining("default"), ["s1", "a1", "a2"]]]);
  });

  it("var-misspelt counts one edit only: a Host beside a Port, two edits apart, is no misspelling", async () => {
    expect(isNearMiss("spireServerHost", "spireServerPort", 1)).toBe(false);
    const { report } = await withVars("    porter: 1\n    sitr: x\n");
    expect(report.findings.map((f) => f.message)).toEqual([
      expect.stringMatching(/^variable "sitr" .* declares "site": misspelt\?$/),
    ]);
  });

  it("names a template reads through @root count as read", () => {
    const ast = Handlebars.parse("{{#each listeners}}{{@root.site}}{{@index}}{{port}}{{/each}}");
    expect(namesUsed(ast).map((n) => n.name)).toEqual(["each", "listeners", "site", "port"]);
  });

  it("an inventory skip comment without a reason is reported, not ignored", async () => {
    const { report } = await withVars("    prot: 1  # omens-lint: skip var-misspelt\n");
    expect(report.findings.map((f) => [f.rule, f.message])).toEqual([
      ["lint-skip", "lint.skip has no reason; give the reason a reviewer reads"],
      ["var-misspelt", expect.stringContaining('"prot"')],
    ]);
  });

  it("a delegate the playbook writes itself is reported at the task, though a variable holds the name", async () => {
    const { report } = await withVars("    backupHost: spire\n", "task-invalid-delegate.ts");
    expect(report.findings.map((f) => [f.rule, f.where.file, f.where.line])).toEqual([
      ["task-invalid", fixture("task-invalid-delegate.ts"), 7],
    ]);
  });

  it("a delegate read from a variable blames that variable, not another holding the same name", async () => {
    const { report, line } = await withVars(
      "    backupHost: s2\n",
      "task-invalid-delegate-var.ts",
      "task-invalid-delegate-var.yaml",
    );
    expect(report.findings.map((f) => [f.message.split(" is ")[0], f.where.line])).toEqual([
      [expect.stringMatching(/^variable "serverHost"/), line("serverHost: s2")],
    ]);
  });

  it("var-misspelt flags a near miss of an optional variable, and case is no edit", async () => {
    expect(isNearMiss("qPrt", "qport", 1)).toBe(true);
    const { report } = await withVars("    mtod: hi\n    SITE: x\n");
    expect(report.findings.map((f) => f.message.split(" (set")[0])).toEqual([
      'variable "mtod"',
      'variable "SITE"',
    ]);
  });

  it("a wrong value from the play's own vars is blamed on them", async () => {
    const [finding] = await findings("role-vars-play-vars.ts");
    expect(finding?.message).toBe(
      'role demo: variable "port" must be integer (got "8081", from the play\'s vars (test/fixtures/lint/role-vars-play-vars.ts:6))',
    );
  });

  it("values shared through an anchor, an alias or a merge key are placed where they are written", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "omens-lint-")), "inventory.yaml");
    const text = [
      "all:",
      "  vars: { site: demo }",
      "  children:",
      "    servers:",
      "      vars: &common",
      "        prot: 1",
      "      hosts:",
      "        s1: { address: 127.0.0.1 }",
      "    agents:",
      "      vars:",
      "        <<: *common",
      "        motd: hi",
      "      hosts:",
      "        a1: { address: 127.0.0.1 }",
      "",
    ];
    writeFileSync(file, text.join("\n"));
    const inventory = loadInventory(file);
    expect(inventory.hosts.get("a1")?.vars).toMatchObject({ prot: 1, motd: "hi" });
    const report = await lint({
      paths: [fixture("clean.ts")],
      inventories: [file],
      typecheck: false,
    });
    expect(report.findings.map((f) => [f.message.split(" is read")[0], f.where.line])).toEqual([
      [`variable "prot" (set in group servers (${file}:6))`, 6],
      [`variable "prot" (set in group agents (${file}:6))`, 6],
    ]);
  });

  it("every schema error of an inventory is reported once, an unknown key beside a wrong type too", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "omens-lint-")), "inventory.yaml");
    const text = [
      "all:",
      "  hosts:",
      "    auth:",
      "      port: x",
      "      adress: 1",
      "    ca:",
      "      port: y",
      "",
    ];
    writeFileSync(file, text.join("\n"));
    const report = await lint({
      paths: [fixture("clean.ts")],
      inventories: [file],
      typecheck: false,
    });
    expect(
      report.findings.map((f) => [f.rule, f.message.split(" (expected")[0], f.where.line]),
    ).toEqual([
      ["inventory-schema", '"all.hosts.auth.port" must be integer', 4],
      ["inventory-schema", '"all.hosts.auth.adress" is not a known setting', 5],
      ["inventory-schema", '"all.hosts.ca.port" must be integer', 7],
    ]);
    expect(report.inventories).toEqual([file]);
  });

  it("inventory skip comments work in a file with CRLF line ends", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "omens-lint-")), "inventory.yaml");
    const text = readFileSync(fixture("var-misspelt.yaml"), "utf8")
      .replace("prot: 9091", "prot: 9091  # omens-lint: skip var-misspelt: read by a site script")
      .replaceAll("\n", "\r\n");
    writeFileSync(file, text);
    const report = await lint({
      paths: [fixture("clean.ts")],
      inventories: [file],
      typecheck: false,
    });
    expect(report.findings).toEqual([]);
    expect(report.suppressed.map((s) => s.reason)).toEqual(["read by a site script"]);
  });

  it("a loop item's delegate read from a variable is found by lint and refused by a run before any host", async () => {
    const inventoryFile = fixture("task-invalid-delegate-var.yaml");
    const file = fixture("task-invalid-delegate-loop.ts");
    const found = await findings("task-invalid-delegate-loop.ts", [inventoryFile]);
    expect(found.map((f) => [f.where.file, f.where.line])).toEqual([
      [inventoryFile, 5],
      [inventoryFile, 5],
    ]);
    const playbook = await loadPlaybook(file);
    expect(() => preparePlaybook(playbook, loadInventory(inventoryFile), file)).toThrow(
      /task "register a" delegates to "s2" \(read from "serverHost"/,
    );
  });

  it("a task builder that returns no list, or a list holding null, is a finding at its play", async () => {
    const found = await findings("task-invalid-steps.ts");
    expect(found.map((f) => [f.rule, f.where.line, f.message])).toEqual([
      ["task-invalid", 5, expect.stringContaining("it returned undefined, not a list of tasks")],
      ["task-invalid", 6, expect.stringContaining("expected a task built by a module function")],
    ]);
  });

  it("a misspelt variable is silenced by a comment on its inventory line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-lint-"));
    const file = join(dir, "inventory.yaml");
    const text = readFileSync(fixture("var-misspelt.yaml"), "utf8");
    writeFileSync(
      file,
      text.replace(
        "prot: 9091",
        "prot: 9091  # omens-lint: skip var-misspelt: read by a site script",
      ),
    );
    const report = await lint({
      paths: [fixture("clean.ts")],
      inventories: [file],
      typecheck: false,
    });
    expect(report.findings).toEqual([]);
    expect(report.suppressed.map((s) => [s.finding.rule, s.reason])).toEqual([
      ["var-misspelt", "read by a site script"],
    ]);
  });

  it("a wrongly typed variable names the host and where its value came from", async () => {
    const [finding] = await findings("clean.ts", [fixture("role-vars-type.yaml")]);
    expect(finding?.message).toContain('variable "port" must be integer (got "8081"');
    expect(finding?.message).toContain(
      "from group servers (test/fixtures/lint/role-vars-type.yaml:8)",
    );
    expect(finding?.hosts).toEqual(["s1"]);
  });

  it("an HCL parse error quotes the rendered line", async () => {
    const [finding] = await findings("template-parse.ts");
    expect(finding?.message).toContain("is not valid HCL");
    expect(finding?.message).toContain('(output line 2: "site = demo")');
  });

  it("a loop's broken line is found in the loop body when the output has as many lines as the template", async () => {
    const [finding] = await findings("template-parse-each-lines.ts");
    expect(finding?.message).toBe(
      'rendered /etc/demo/ports.hcl is not valid HCL: illegal char (output line 4: "port_2 = 8083:tls")',
    );
    expect(finding?.where).toEqual({ file: fixture("templates/ports.hcl.hbs"), line: 3 });
  });

  it("an unclosed brace says the file ends early, at the last line, not past it", async () => {
    const [finding] = await findings("template-parse-eof.ts");
    expect(finding?.message).toBe(
      'rendered /etc/demo/server.hcl is not valid HCL: the file ends early: object expected closing RBRACE got: EOF (output line 6: "log_level = \\"INFO\\"")',
    );
    expect(finding?.where).toEqual({ file: fixture("templates/unclosed.hcl.hbs"), line: 6 });
  });

  it("a JSON trailing comma written by a loop is named, at the comma's line", async () => {
    const [finding] = await findings("template-parse-json-comma.ts");
    expect(finding?.message).toBe(
      `rendered /etc/demo/ports.json is not valid JSON: a trailing comma before ']' (JSON allows no comma after the last item) (output line 5: "8082,")`,
    );
    expect(finding?.where).toEqual({ file: fixture("templates/ports.json.hbs"), line: 5 });
  });

  it("the run-varying helper warning says every run reports changed (B04)", async () => {
    const [finding] = await findings("template-nondeterministic.ts");
    expect(finding?.message).toContain("non-deterministic template value {{controllerTime}}");
    expect(finding?.message).toContain("reports changed");
  });

  it("a Secret on a command line without noLog names the argument", async () => {
    const [finding] = await findings("secret-no-log.ts");
    expect(finding?.message).toContain("(argv[2]) without noLog");
  });

  it("lists every YAML error of an inventory, a duplicate key by name, each at its line", async () => {
    const file = fixture("inventory-yaml-duplicates.yaml");
    const found = await findings("clean.ts", [file]);
    expect(found.map((f) => [f.rule, f.where.line, f.where.column, f.message])).toEqual([
      [
        "inventory-schema",
        5,
        5,
        `invalid YAML: the key "site" is written twice in one map (a map's keys must be unique)`,
      ],
      [
        "inventory-schema",
        10,
        9,
        `invalid YAML: the key "a1" is written twice in one map (a map's keys must be unique)`,
      ],
    ]);
  });

  it("a template variable that holds itself is checked without following it forever", async () => {
    expect(await findings("cyclic-vars.ts")).toEqual([]);
  });

  it("a pattern term that matches no host is named, beside the terms that do", async () => {
    const [finding] = await findings("play-no-hosts-term.ts");
    expect(finding?.message).toBe(
      `play "agents,sevrers": 'sevrers' in pattern 'agents,sevrers' matches no host in ${relative(process.cwd(), inventory)} (a misspelt group?)`,
    );
  });

  it("finds secrets in numbers, lists, plural names and nested keys, each at its own line", async () => {
    const found = await findings("clean.ts", [fixture("secret-plain-var-shapes.yaml")]);
    expect(
      found.map((f) => [f.rule, f.where.line, /variable "([^"]+)"/.exec(f.message)?.[1]]),
    ).toEqual([
      ["secret-plain-var", 5, "dbPassword"],
      ["secret-plain-var", 6, "adminPassword"],
      ["secret-plain-var", 7, "unsealKeys"],
      ["secret-plain-var", 10, "users[0].password"],
      ["secret-plain-var", 12, "apiCreds.token"],
    ]);
  });

  it("names that hold secrets are told from names about them", () => {
    const secret = ["joinToken", "db_password", "unsealKey", "apiKey", "clientSecret", "token"];
    secret.push("unsealKeys", "passwords");
    const not = ["publicKey", "tokenTtl", "keyFile", "ekCaBundle", "signingKeyId", "site"];
    not.push("sshKeys", "authorizedKeys", "hostKey", "keyless");
    expect(secret.filter((n) => !isSecretName(n))).toEqual([]);
    expect(not.filter((n) => isSecretName(n))).toEqual([]);
  });

  it("paths to secrets and references to where they are kept are not plain secrets", () => {
    const plain = ["tok-demo-1", "hunter2", "s.AbCdEf0123", "admin:hunter2", 123456];
    const not = ["/etc/step-ca/secrets/pin", "./ca/key.pem", "yubikey:slot-id=9c", "env:TOKEN", ""];
    expect(plain.filter((v) => !isPlainSecretValue(v))).toEqual([]);
    expect(not.filter((v) => isPlainSecretValue(v))).toEqual([]);
  });

  it("a rendered .conf is parsed as HCL under /etc/spire/ only", async () => {
    const found = await findings("template-parse-conf.ts");
    expect(found.map((f) => [f.rule, f.where.file, f.where.line, f.message])).toEqual([
      [
        "template-parse",
        fixture("templates/broken.hcl.hbs"),
        2,
        'rendered /etc/spire/demo.conf is not valid HCL: Unknown token: 2:10 IDENT demo (output line 2: "site = demo")',
      ],
    ]);
  });

  it("config formats follow the destination's name; only SPIRE's .conf files are HCL", () => {
    expect(configFormat("/etc/spire/server/server.conf")).toBe("hcl");
    expect(configFormat("/etc/openbao/config.hcl")).toBe("hcl");
    expect(configFormat("/etc/step-ca/config/ca.json")).toBe("json");
    expect(configFormat("/etc/spire/agent/agent.conf")).toBe("hcl");
    expect(configFormat("/etc/nginx/conf.d/jwks.conf")).toBeUndefined();
    expect(configFormat("/etc/ssh/sshd_config.d/50-hardening.conf")).toBeUndefined();
    expect(configFormat("/etc/systemd/system/spire-agent.service.d/50-hardening.conf")).toBe(
      undefined,
    );
    expect(configFormat("/etc/motd")).toBeUndefined();
  });
});

describe("omens-play lint: the options of loops and blocks", () => {
  const where = (f: Finding) => [f.rule, f.level ?? "", f.where.file, f.where.line, f.message];

  it("a fixed loop's own notify is read: a misspelt handler is found, the one it names is used", async () => {
    const file = fixture("handler-loop-notify.ts");
    expect((await findings("handler-loop-notify.ts")).map(where)).toEqual([
      [
        "handler-undefined",
        "",
        file,
        12,
        'task "the other demo config" notifies "restart dmeo", but the play defines no such handler (defined: "restart demo")',
      ],
    ]);
    const playbook = await loadPlaybook(file);
    expect(() => preparePlaybook(playbook, loadInventory(inventory), file)).toThrow(
      'task "the other demo config" notifies "restart dmeo", but no handler has that name',
    );
  });

  it("a fixed loop's skip silences its items' findings, and says so when it silences nothing", async () => {
    const report = await lint({
      paths: [fixture("lint-skip-loop.ts")],
      inventories: [inventory],
      typecheck: false,
    });
    expect(report.findings.map(where)).toEqual([
      [
        "lint-skip",
        "warning",
        fixture("lint-skip-loop.ts"),
        16,
        "lint.skip names command-changed, but command-changed finds nothing here: remove it",
      ],
    ]);
    const reason = "read-only reports; changed is honest";
    expect(report.suppressed.map((s) => [s.finding.rule, s.finding.where.line, s.reason])).toEqual([
      ["command-changed", 10, reason],
      ["command-changed", 10, reason],
    ]);
  });

  it("a template is rendered only on the hosts its blocks' and loop's when leave it to", async () => {
    expect((await findings("template-when-block-loop.ts")).map(where)).toEqual([
      [
        "template-render",
        "",
        fixture("templates/undefined-var.txt.hbs"),
        2,
        'template variable "siteOwner" is not defined',
      ],
    ]);
    const [found] = await findings("template-when-block-loop.ts");
    expect(found?.hosts).toEqual(["a1", "a2"]);
  });

  it("the lenient build places loops and the when around each task as the compiled one does", async () => {
    for (const name of ["lint-skip-loop.ts", "template-when-block-loop.ts"]) {
      const file = fixture(name);
      const playbook = await loadPlaybook(file);
      const loaded = loadInventory(inventory);
      for (const play of playbook.plays)
        for (const host of loaded.hosts.values()) {
          const problems: Finding[] = [];
          const lenient = expandLeniently(play, host, file, problems, loaded.hosts);
          const compiled = expandHost(play, host, file, problems, loaded.hosts);
          const shape = (t: LintTask) => [
            t.task.where,
            Object.keys(t.task.options),
            t.conditions.length,
            t.loop?.task.where,
          ];
          expect(lenient.tasks.map(shape)).toEqual(compiled.tasks.map(shape));
          expect(lenient.loops.map(shape)).toEqual(compiled.loops.map(shape));
        }
    }
  });
});

describe("omens-play lint: clean input", () => {
  it("the clean fixture gives no finding and silences nothing", async () => {
    const report = await lint({ paths: [fixture("clean.ts")], inventories: [inventory] });
    expect(report.findings).toEqual([]);
    expect(report.suppressed).toEqual([]);
  }, 60_000);

  it("a skip with a reason silences its finding for that task only, and keeps the reason", async () => {
    const report = await lint({
      paths: [fixture("skipped.ts")],
      inventories: [inventory],
      typecheck: false,
    });
    expect(report.findings).toEqual([]);
    expect(report.suppressed.map((s) => [s.finding.rule, s.finding.where.line, s.reason])).toEqual([
      ["command-changed", 7, "a read-only report; changed is honest"],
    ]);
  });

  it("a template whose when is false for a host from its variables is not rendered there", async () => {
    expect(await findings("template-when.ts")).toEqual([]);
  });

  it("an inventory line silences its own finding with an omens-lint comment and a reason", async () => {
    const report = await lint({
      paths: [fixture("clean.ts")],
      inventories: [fixture("secret-plain-var-skipped.yaml")],
      typecheck: false,
    });
    expect(report.findings).toEqual([]);
    expect(report.suppressed.map((s) => [s.finding.rule, s.finding.where.line, s.reason])).toEqual([
      ["secret-plain-var", 11, "a throw-away token of the test lab"],
    ]);
  });

  it("the shipped playbooks are clean against the lab and production inventories", async () => {
    const report = await lint({
      paths: [join(root, "playbooks")],
      inventories: [join(root, "inventory/lab.yaml"), join(root, "inventory/production.yaml")],
    });
    expect(
      report.findings.map((f) => `${f.where.file}:${f.where.line} ${f.rule} ${f.message}`),
    ).toEqual([]);
    expect(report.playbooks.length).toBeGreaterThan(0);
  }, 60_000);

  it("lint's lenient build gives the same tasks, variables and handlers per host as the runner's compile step", async () => {
    for (const [file, inv] of [
      [fixture("clean.ts"), inventory],
      [join(root, "playbooks/sprint1-foundation.ts"), join(root, "inventory/lab.yaml")],
      [join(root, "playbooks/sprint3-migrate.ts"), join(root, "inventory/lab.yaml")],
    ] as const) {
      const playbook = await loadPlaybook(file);
      const loaded = loadInventory(inv);
      for (const play of playbook.plays)
        for (const name of matchHosts(loaded, play.hosts).hosts) {
          const host = loaded.hosts.get(name)!;
          const problems: Finding[] = [];
          const plan = expandLeniently(play, host, file, problems, loaded.hosts);
          const compiled = compileHost(play, host, file, undefined, loaded.hosts);
          expect(problems).toEqual([]);
          const shape = (t: { task: { where: unknown }; vars: unknown; baseDir: string }) => [
            t.task.where,
            t.vars,
            t.baseDir,
          ];
          expect(plan.tasks.map(shape)).toEqual(compiled.tasks.map(shape));
          expect(plan.handlers.map((h) => [h.handler?.id, h.handler?.name])).toEqual(
            compiled.handlers.map((h) => [h.id, h.name]),
          );
        }
    }
  });
});

describe("omens-play lint: SARIF", () => {
  it("validates against the SARIF 2.1.0 JSON schema, with rule metadata and suppressions", async () => {
    const report = await lint({
      paths: ["command-changed.ts", "template-render.ts", "skipped.ts", "play-no-hosts.ts"].map(
        fixture,
      ),
      inventories: [inventory],
      typecheck: false,
    });
    const sarif = JSON.parse(formatSarif(report, root)) as {
      runs: { tool: { driver: { rules: { id: string }[] } }; results: { ruleId: string }[] }[];
    };
    const schemaFile = createRequire(import.meta.url).resolve(
      "@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json",
    );
    const schema = JSON.parse(readFileSync(schemaFile, "utf8")) as object;
    const ajv = new Ajv04({ allErrors: true, strict: false, unicodeRegExp: false });
    const validate = ajv.compile(schema);
    expect(validate(sarif) ? [] : validate.errors).toEqual([]);
    const run = sarif.runs[0]!;
    expect(run.tool.driver.rules.map((r) => r.id)).toEqual([...LINT_RULE_IDS]);
    expect(run.results.map((r) => r.ruleId).sort()).toEqual([
      "command-changed",
      "command-changed",
      "play-no-hosts",
      "template-render",
    ]);
  });

  it("each rule's help says how it is silenced: in the task, on the inventory line, or not at all", async () => {
    const report = await lint({ paths: [fixture("clean.ts")], inventories: [], typecheck: false });
    const sarif = JSON.parse(formatSarif(report, root)) as {
      runs: { tool: { driver: { rules: { id: string; help: { text: string } }[] } } }[];
    };
    const help = new Map(sarif.runs[0]!.tool.driver.rules.map((r) => [r.id, r.help.text]));
    const task = (id: string) => `lint: { skip: ["${id}"], reason: "..." }`;
    const line = (id: string) => `# omens-lint: skip ${id}: <reason>`;
    expect(help.get("command-changed")).toContain(task("command-changed"));
    expect(help.get("command-changed")).not.toContain("omens-lint: skip");
    expect(help.get("var-misspelt")).toContain(line("var-misspelt"));
    expect(help.get("var-misspelt")).not.toContain("lint: {");
    expect(help.get("secret-plain-var")).toContain(task("secret-plain-var"));
    expect(help.get("secret-plain-var")).toContain(line("secret-plain-var"));
    expect(help.get("role-vars")).toMatch(/It cannot be skipped\.$/);
  });

  it("a schema-invalid log is refused, so the validation above can fail", () => {
    const schemaFile = createRequire(import.meta.url).resolve(
      "@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json",
    );
    const ajv = new Ajv04({ strict: false, unicodeRegExp: false });
    const validate = ajv.compile(JSON.parse(readFileSync(schemaFile, "utf8")) as object);
    expect(validate({ version: "2.1.0", runs: [{ results: [{ message: {} }] }] })).toBe(false);
  });
});

describe("omens-play lint: the command line", () => {
  const run = promisify(execFile);
  const cli = async (...args: string[]) => {
    try {
      const { stdout } = await run("node", ["bin/omens-play.js", "lint", ...args], { cwd: root });
      return { code: 0, stdout };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout + e.stderr };
    }
  };
  const fixtureArgs = (name: string) => [
    `test/fixtures/lint/${name}`,
    "-i",
    "test/fixtures/lint/inventory.yaml",
    "--no-typecheck",
  ];

  it("prints file:line:col rule-id level: message and exits 2 on an error", async () => {
    const { code, stdout } = await cli(...fixtureArgs("command-changed.ts"));
    expect(code).toBe(2);
    expect(stdout).toMatch(
      /^test\/fixtures\/lint\/command-changed\.ts:6:13 command-changed error: task "the report is written" has neither/m,
    );
  }, 30_000);

  it("exits 0 on warnings only, and 2 with --strict", async () => {
    expect((await cli(...fixtureArgs("name-missing.ts"))).code).toBe(0);
    expect((await cli(...fixtureArgs("name-missing.ts"), "--strict")).code).toBe(2);
  }, 30_000);

  it("--format json gives one document with the findings and a summary", async () => {
    const { code, stdout } = await cli(...fixtureArgs("handler-undefined.ts"), "--format", "json");
    expect(code).toBe(2);
    const report = JSON.parse(stdout) as {
      findings: { rule: string; file: string; line: number }[];
    };
    expect(report.findings.map((f) => [f.rule, f.file, f.line])).toEqual([
      ["handler-undefined", "test/fixtures/lint/handler-undefined.ts", 7],
    ]);
  }, 30_000);

  it("exits 5 on bad usage: an unknown format or a missing path", async () => {
    expect((await cli("--format", "xml")).code).toBe(5);
    const missing = await cli("no/such/playbooks", "--no-typecheck");
    expect(missing.code).toBe(5);
    expect(missing.stdout).toContain("no such file or folder: no/such/playbooks");
    const inventory = await cli("playbooks", "-i", "no/such.yaml", "--no-typecheck");
    expect(inventory.code).toBe(5);
    expect(inventory.stdout).toContain("inventory not found");
  }, 30_000);

  it("exits 5 on a path that holds no playbook: a folder without one, or another kind of file", async () => {
    const empty = mkdtempSync(join(tmpdir(), "omens-lint-empty-"));
    const folder = await cli(empty, "--no-typecheck");
    expect(folder.code).toBe(5);
    expect(folder.stdout).toContain(`no playbook (.ts or .mts file) in the folder ${empty}`);
    const yaml = await cli("inventory/lab.yaml", "--no-typecheck");
    expect(yaml.code).toBe(5);
    expect(yaml.stdout).toContain("inventory/lab.yaml is not a playbook");
  }, 30_000);

  it("exits 5 on a folder whose modules are all helpers, naming the folder", async () => {
    const { code, stdout } = await cli("test/fixtures/lint/helpers-only", "--no-typecheck");
    expect(code).toBe(5);
    expect(stdout.trim()).toBe(
      "error: no playbook in the folder test/fixtures/lint/helpers-only: its modules have no default export (helpers only)",
    );
  }, 30_000);

  it("exits 5 on an empty or folder inventory, or an empty path, naming the argument", async () => {
    const empty = await cli("playbooks", "-i", "", "--no-typecheck");
    expect([empty.code, empty.stdout.trim()]).toEqual([
      5,
      "error: -i/--inventory is given an empty value (or $OMENS_INVENTORY is empty): name a YAML file",
    ]);
    const folder = await cli("playbooks", "-i", "inventory", "--no-typecheck");
    expect(folder.code).toBe(5);
    expect(folder.stdout).toContain("error: -i inventory is a folder, not an inventory");
    expect(folder.stdout).not.toContain("inventory-schema");
    const path = await cli("", "-i", "inventory/lab.yaml", "--no-typecheck");
    expect([path.code, path.stdout.trim()]).toEqual([
      5,
      "error: a PATH is given as an empty value: name a playbook file or folder",
    ]);
  }, 30_000);

  it("counts a playbook named twice, alone and through its folder, once", async () => {
    const { code, stdout } = await cli(
      "playbooks/health.ts",
      "playbooks",
      "-i",
      "inventory/lab.yaml",
      "--no-typecheck",
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/in 6 playbook\(s\)/);
  }, 30_000);
});
