import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OmensError } from "../../engine/errors.js";
import { loadInventory, variableSource } from "../../engine/inventory/load.js";
import { matchHosts } from "../../engine/inventory/patterns.js";
import { keyPath } from "../../engine/inventory/schema.js";

const dir = mkdtempSync(join(tmpdir(), "omens-inv-"));
function inventoryFile(text: string, name = "inv.yaml") {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}
function loadError(text: string): OmensError {
  try {
    loadInventory(inventoryFile(text));
  } catch (error) {
    return error as OmensError;
  }
  throw new Error("expected the inventory to be refused");
}

const b10 = `all:
  children:
    api:    {hosts: {api1: {}, api2: {}}}
    worker: {hosts: {wk1: {}, wk2: {}}}
`;

describe("inventory", () => {
  it("merges vars from all, parent groups, child groups and the host, recording where each came from", () => {
    const inv = loadInventory(
      inventoryFile(`all:
  vars: {a: all, b: all, c: all}
  user: deploy
  children:
    agents:
      vars: {b: agents}
      port: 2200
      hosts:
        auth: {address: auth.funlab.casa, vars: {c: host}}
`),
    );
    const auth = inv.hosts.get("auth")!;
    expect(auth.vars).toEqual({ a: "all", b: "agents", c: "host" });
    expect(variableSource(auth, "b")?.label).toMatch(/^group agents \(.*inv\.yaml:6\)$/);
    expect(auth.connection).toMatchObject({
      address: "auth.funlab.casa",
      port: 2200,
      user: "deploy",
      kind: "ssh",
    });
    expect(auth.groups.sort()).toEqual(["agents", "all"]);
  });

  it("keeps variables named like an object's own properties as plain variables", () => {
    const inv = loadInventory(
      inventoryFile(`all:
  vars: {constructor: 1, toString: two, hasOwnProperty: 3}
  hosts:
    auth:
      vars: {__proto__: {polluted: true}, constructor: 4}
`),
    );
    const auth = inv.hosts.get("auth")!;
    expect(Object.getPrototypeOf(auth.vars)).toBe(Object.prototype);
    expect(Object.entries(auth.vars)).toEqual([
      ["constructor", 4],
      ["toString", "two"],
      ["hasOwnProperty", 3],
      ["__proto__", { polluted: true }],
    ]);
    expect("polluted" in auth.vars).toBe(false);
    expect(variableSource(auth, "constructor")?.label).toMatch(/^host auth /);
    expect(variableSource(auth, "valueOf")).toBeUndefined();
  });

  it("names the file, line and column of an unknown key", () => {
    const err = loadError("all:\n  hosts:\n    auth:\n      adress: auth.funlab.casa\n");
    expect(err.code).toBe("INVENTORY_SCHEMA");
    expect(err.message).toContain('"all.hosts.auth.adress" is not a known setting');
    expect(err.where).toMatchObject({ line: 4, column: 7 });
  });

  it("a run names the first schema problem in the file and how many more lint lists", () => {
    const err = loadError("all:\n  hosts:\n    ca:\n      adress: x\n    auth:\n      port: no\n");
    expect(err.message).toBe(
      '"all.hosts.ca.adress" is not a known setting (expected one of: vars, address, port, user, key, agent, knownHosts, connectTimeout, connection, become, becomeUser, becomePasswordEnv); 1 more problem(s): omens-play lint lists them all',
    );
    expect(err.where.line).toBe(4);
  });

  it("an unknown key of a group lists the group's settings, of the document its one key", () => {
    expect(loadError("all:\n  chidren: {}\n").message).toContain(
      "(expected one of: hosts, children, vars, address,",
    );
    expect(loadError("al:\n  hosts: {}\n").message).toContain(
      '"al" is not a known setting (expected one of: all)',
    );
  });

  it("refuses, with its line, YAML whose data would differ from what is written", () => {
    const cases: [string, RegExp, number][] = [
      ["all:\n  hosts:\n    d: !!omap [{port: 1}]\n", /YAML tag !!omap is not read/, 3],
      ["all:\n  hosts:\n    c: !!binary aGk=\n", /YAML tag !!binary is not read/, 3],
      [
        'all:\n  hosts:\n    1: {port: 22}\n    "1": {port: 23}\n',
        /key "1" is written twice in one map \(first at line 3\)/,
        4,
      ],
      ["all:\n  hosts:\n    a: *nope\n", /alias \*nope has no anchor &nope before it/, 3],
      ["all:\n  hosts:\n    a:\n      <<: 5\n", /a merge key \(<<\) takes a map/, 4],
      ["all: &a\n  children:\n    g: *a\n", /alias \*a is inside the value it names/, 3],
      ["all:\n  hosts:\n    ? [a, b]\n    : {}\n", /a key must be a plain name or value/, 3],
    ];
    for (const [text, message, line] of cases) {
      const err = loadError(text);
      expect([err.code, err.where.line]).toEqual(["INVENTORY_YAML", line]);
      expect(err.message).toMatch(message);
    }
  });

  it("reads many hosts merging one anchor, and refuses an alias bomb", () => {
    const hosts = Array.from(
      { length: 150 },
      (_, i) => `    h${i}:\n      <<: *d\n      address: 127.0.0.1\n`,
    );
    const inv = loadInventory(
      inventoryFile(`all:\n  vars:\n    d: &d {user: root, port: 1}\n  hosts:\n${hosts.join("")}`),
    );
    expect(inv.hosts.get("h149")?.connection).toMatchObject({ user: "root", port: 1 });
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (const [prev, name] of ["ab", "bc", "cd", "de", "ef", "fg"].map((p) => [...p]))
      levels.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(", ")}]`);
    const err = loadError(`${levels.join("\n")}\nall: {}\n`);
    expect(err.code).toBe("INVENTORY_YAML");
    expect(err.message).toMatch(/^cannot read the YAML: .*alias count/);
  });

  it("a bad host name is named even when its settings are wrong too, and an empty name as ['']", () => {
    const err = loadError('all:\n  hosts:\n    "bad name":\n      port: x\n    ~: {}\n');
    expect(err.message).toBe(
      `"all.hosts['bad name']" is not a valid name; 2 more problem(s): omens-play lint lists them all`,
    );
    expect(loadError("all:\n  hosts:\n    ok: {}\n    ~: {}\n").message).toBe(
      `"all.hosts['']" is not a valid name`,
    );
  });

  it("an empty vars: is no variables, an empty file is called empty, a list is placed at its start", () => {
    const inv = loadInventory(
      inventoryFile("all:\n  vars:\n  hosts:\n    a: {address: 127.0.0.1}\n"),
    );
    expect(inv.hosts.get("a")?.vars).toEqual({});
    expect(loadError("# nothing yet\n\n").message).toBe(
      "the inventory is empty: it needs an 'all' group with hosts",
    );
    const err = loadError("- all\n");
    expect([err.message, err.where.line, err.where.column]).toEqual([
      "the document must be object",
      1,
      1,
    ]);
  });

  it("names the line of a wrong type", () => {
    const err = loadError("all:\n  hosts:\n    auth:\n      port: twenty-two\n");
    expect(err.message).toContain("must be integer");
    expect(err.where.line).toBe(4);
  });

  it("names a host whose name holds %, / or dots as written, with its line", () => {
    for (const name of ["a%zz", "a/b"]) {
      const err = loadError(`all:\n  hosts:\n    "${name}":\n      port: twenty-two\n`);
      expect(err.code).toBe("INVENTORY_SCHEMA");
      expect(err.message).toBe(
        `"all.hosts['${name}']" is not a valid name; 1 more problem(s): omens-play lint lists them all`,
      );
      expect(err.where.line).toBe(3);
    }
    const err = loadError(`all:\n  hosts:\n    spire.funlab.casa:\n      port: twenty-two\n`);
    expect(err.message).toBe(`"all.hosts['spire.funlab.casa'].port" must be integer`);
    expect(err.where.line).toBe(4);
  });

  it("writes a path so that each key reads back as one key", () => {
    expect(keyPath(["spireEntries", "1", "selectors"])).toBe("spireEntries[1].selectors");
    expect(keyPath(["all", "hosts", "ca.funlab.casa", "vars"])).toBe(
      "all.hosts['ca.funlab.casa'].vars",
    );
    expect(keyPath(["a", "it's", "b\\c"])).toBe("a['it\\'s']['b\\\\c']");
    expect(keyPath(["tpm-validate", "x_1"])).toBe("tpm-validate.x_1");
    // With the data, a map key made of digits is told from a list position.
    const data = { hosts: { "10": { ports: [1, 2] } } };
    expect(keyPath(["hosts", "10", "ports", "1"], data)).toBe("hosts['10'].ports[1]");
    expect(keyPath(["a\nb", 'q"'])).toBe("['a\\nb']['q\\\"']");
  });

  it("refuses malformed YAML and duplicate keys with their line", () => {
    expect(loadError("all:\n  hosts: [unclosed\n").code).toBe("INVENTORY_YAML");
    const dup = loadError("all:\n  hosts:\n    auth: {}\n    auth: {}\n");
    expect(dup.code).toBe("INVENTORY_YAML");
    expect(dup.where.line).toBe(4);
  });

  it("refuses a host given settings twice, and a group that contains itself", () => {
    expect(
      loadError(
        "all:\n  children:\n    a: {hosts: {h: {port: 1}}}\n    b: {hosts: {h: {port: 2}}}\n",
      ).code,
    ).toBe("INVENTORY_DUPLICATE_HOST");
    expect(
      loadError("all:\n  children:\n    a:\n      children:\n        all: {hosts: {h: {}}}\n").code,
    ).toBe("INVENTORY_CYCLE");
  });
});

describe("host patterns", () => {
  const inv = loadInventory(inventoryFile(b10, "b10.yaml"));
  const playHosts = (pattern: string, limit?: string) => {
    const play = matchHosts(inv, pattern).hosts;
    return limit ? play.filter((h) => matchHosts(inv, limit).hosts.includes(h)) : play;
  };

  it("a limit naming a host outside the play's group selects nothing", () => {
    expect(playHosts("worker", "api1")).toEqual([]);
    expect(playHosts("worker", "wk1")).toEqual(["wk1"]);
    expect(playHosts("worker", "api*")).toEqual([]);
  });

  it("supports exclusion, intersection, globs and lists", () => {
    expect(matchHosts(inv, "worker:!wk2").hosts).toEqual(["wk1"]);
    expect(matchHosts(inv, "all:&worker").hosts).toEqual(["wk1", "wk2"]);
    expect(matchHosts(inv, "api*,wk2").hosts).toEqual(["api1", "api2", "wk2"]);
    expect(matchHosts(inv, "&worker,all").hosts).toEqual(["wk1", "wk2"]);
  });

  it("starts from every host when a pattern has only exclusions and intersections", () => {
    expect(matchHosts(inv, "!api1").hosts).toEqual(["api2", "wk1", "wk2"]);
    expect(matchHosts(inv, "!api:!wk2").hosts).toEqual(["wk1"]);
    expect(matchHosts(inv, "&worker,!wk1").hosts).toEqual(["wk2"]);
    expect(matchHosts(inv, "!api1,wk1").hosts).toEqual(["wk1"]);
  });

  it("selects nothing from an @file that lists no host, even beside an exclusion", () => {
    const file = join(dir, "empty-retry");
    writeFileSync(file, "# no host failed\n");
    expect(matchHosts(inv, `@${file}`).hosts).toEqual([]);
    expect(matchHosts(inv, `@${file},!wk1`).hosts).toEqual([]);
    expect(matchHosts(inv, `!@${file}`).hosts).toEqual(["api1", "api2", "wk1", "wk2"]);
  });

  it("refuses a '!' or '&' with no name after it, which would otherwise select every host", () => {
    for (const pattern of ["!", "&", "worker:!", "!,api1"])
      expect(() => matchHosts(inv, pattern)).toThrow(
        `host pattern '${pattern}': '${pattern.includes("&") ? "&" : "!"}' names no host or group (an unset shell variable?); '!' alone would select every host`,
      );
  });

  it("reports terms that matched nothing", () => {
    expect(matchHosts(inv, "nosuch")).toEqual({ hosts: [], unmatched: ["nosuch"] });
  });

  it("reads @file, one host per line", () => {
    const file = join(dir, "retry");
    writeFileSync(file, "wk2\n# comment\napi1\n");
    expect(matchHosts(inv, `@${file}`).hosts).toEqual(["api1", "wk2"]);
  });

  it("never selects a host outside the union (every host when none is written), whatever the pattern (random patterns)", () => {
    const term = fc.constantFrom(
      "api1",
      "api2",
      "wk1",
      "wk2",
      "api",
      "worker",
      "all",
      "api*",
      "w*",
      "nosuch",
    );
    const clause = fc.tuple(fc.constantFrom("", "!", "&"), term).map(([p, t]) => p + t);
    fc.assert(
      fc.property(fc.array(clause, { minLength: 1, maxLength: 5 }), (clauses) => {
        const hosts = matchHosts(inv, clauses.join(",")).hosts;
        const written = clauses.filter((c) => !/^[!&]/.test(c));
        const unions = (written.length > 0 ? written : ["all"]).flatMap(
          (c) => matchHosts(inv, c).hosts,
        );
        expect(hosts.every((h) => unions.includes(h))).toBe(true);
        const excluded = clauses
          .filter((c) => c.startsWith("!"))
          .flatMap((c) => matchHosts(inv, c.slice(1)).hosts);
        expect(hosts.some((h) => excluded.includes(h))).toBe(false);
      }),
    );
  });
});
