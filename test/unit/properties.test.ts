import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { stringify } from "yaml";
import { loadInventory, type Inventory } from "../../engine/inventory/load.js";
import { matchHosts } from "../../engine/inventory/patterns.js";
import { editBlock, editLine, type Anchor } from "../../engine/modules/line-edit.js";

// Property-based tests: for random inputs, the pure parts of the engine keep their promises.
// Edits applied twice equal edits applied once; patterns and inventories behave the same
// whatever order their parts come in.
const RUNS = { numRuns: 300 };
// Hundreds of inventories are written and loaded per property: allow for a busy machine.
vi.setConfig({ testTimeout: 60_000 });

/** A random inventory: groups nested in a tree (never a cycle), hosts spread over them. */
const inventoryShape = fc
  .record({
    parents: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
    hosts: fc.array(fc.record({ group: fc.nat(), port: fc.integer({ min: 1, max: 65535 }) }), {
      minLength: 1,
      maxLength: 8,
    }),
    groupVars: fc.array(fc.integer(), { minLength: 6, maxLength: 6 }),
  })
  .map(({ parents, hosts, groupVars }) => {
    // Group i's parent is a group before it (or `all`), so the tree has no cycle.
    const groups = parents.map((p, i) => ({ name: `g${i}`, parent: i === 0 ? -1 : p % i }));
    return {
      groups,
      hosts: hosts.map((h, i) => ({ name: `h${i}`, group: h.group % groups.length, port: h.port })),
      groupVars,
    };
  });
type Shape = ReturnType<typeof inventoryShape.generate>["value"];

function inventoryYaml(shape: Shape): string {
  const node = (index: number): Record<string, unknown> => {
    const hosts = shape.hosts.filter((h) => h.group === index);
    const children = shape.groups.filter((g) => g.parent === index);
    return {
      vars: { level: shape.groupVars[index], [`only_g${index}`]: true },
      ...(hosts.length
        ? {
            hosts: Object.fromEntries(
              hosts.map((h) => [
                h.name,
                { connection: "local", port: h.port, vars: { level: `host ${h.name}` } },
              ]),
            ),
          }
        : {}),
      ...(children.length
        ? {
            children: Object.fromEntries(
              children.map((c) => [c.name, node(shape.groups.indexOf(c))]),
            ),
          }
        : {}),
    };
  };
  const roots = shape.groups.filter((g) => g.parent === -1);
  return stringify({
    all: {
      vars: { level: "all" },
      children: Object.fromEntries(roots.map((r) => [r.name, node(shape.groups.indexOf(r))])),
    },
  });
}

function load(shape: Shape): Inventory {
  const file = join(mkdtempSync(join(tmpdir(), "omens-prop-")), "inventory.yaml");
  writeFileSync(file, inventoryYaml(shape));
  return loadInventory(file);
}

/** The groups above a group, itself included. */
function lineage(shape: Shape, index: number): string[] {
  const out: string[] = [];
  for (let g = index; g >= 0; g = shape.groups[g]?.parent ?? -1) out.push(`g${g}`);
  return out;
}

describe("property: the inventory loader", () => {
  it("keeps every host, puts it in every group above it, and lets host vars win", () => {
    fc.assert(
      fc.property(inventoryShape, (shape) => {
        const inventory = load(shape);
        expect([...inventory.hosts.keys()].sort()).toEqual(shape.hosts.map((h) => h.name).sort());
        for (const h of shape.hosts) {
          const host = inventory.hosts.get(h.name);
          expect(host?.connection.port).toBe(h.port);
          expect(host?.vars.level).toBe(`host ${h.name}`);
          for (const g of lineage(shape, h.group)) {
            expect(host?.groups).toContain(g);
            expect(host?.vars[`only_${g}`]).toBe(true);
            expect(inventory.groups.get(g)).toContain(h.name);
          }
        }
      }),
      { numRuns: 100 },
    );
  });

  it("loading the same file twice gives the same inventory", () => {
    fc.assert(
      fc.property(inventoryShape, (shape) => {
        const a = load(shape);
        const b = load(shape);
        expect([...b.hosts.values()].map((h) => [h.name, h.groups, h.vars])).toEqual(
          [...a.hosts.values()].map((h) => [h.name, h.groups, h.vars]),
        );
      }),
      { numRuns: 50 },
    );
  });
});

describe("property: host patterns", () => {
  const term = (shape: Shape) =>
    fc.oneof(
      fc.constantFrom(
        ...shape.hosts.map((h) => h.name),
        ...shape.groups.map((g) => g.name),
        "all",
        "h*",
        "g?",
        "nosuch",
      ),
      fc
        .constantFrom("!", "&", "")
        .chain((prefix) =>
          fc
            .constantFrom(...shape.hosts.map((h) => h.name), ...shape.groups.map((g) => g.name))
            .map((t) => prefix + t),
        ),
    );
  const withPattern = inventoryShape.chain((shape) =>
    fc.tuple(fc.constant(shape), fc.array(term(shape), { minLength: 1, maxLength: 6 })),
  );

  it("selects inventory hosts only, once each, in inventory order", () => {
    fc.assert(
      fc.property(withPattern, ([shape, terms]) => {
        const inventory = load(shape);
        const { hosts } = matchHosts(inventory, terms.join(","));
        const order = [...inventory.hosts.keys()];
        expect(hosts).toEqual(order.filter((h) => hosts.includes(h)));
      }),
      { numRuns: 100 },
    );
  });

  it("does not depend on the order of its terms, nor on ',' versus ':'", () => {
    fc.assert(
      fc.property(withPattern, fc.nat(), ([shape, terms], seed) => {
        const inventory = load(shape);
        const shuffled = [...terms].sort(
          (a, b) => ((a.length * 31 + seed) % 7) - ((b.length * 31 + seed) % 7),
        );
        const once = matchHosts(inventory, terms.join(",")).hosts;
        expect(matchHosts(inventory, shuffled.join(":")).hosts).toEqual(once);
      }),
      { numRuns: 100 },
    );
  });

  it("selecting again by the hosts selected gives the same hosts", () => {
    fc.assert(
      fc.property(withPattern, ([shape, terms]) => {
        const inventory = load(shape);
        const once = matchHosts(inventory, terms.join(",")).hosts;
        if (once.length === 0) return;
        expect(matchHosts(inventory, once.join(",")).hosts).toEqual(once);
      }),
      { numRuns: 100 },
    );
  });
});

describe("property: lineinfile and blockinfile planning", () => {
  const LINES = ["port=1", "port=2", "name=a", "", "[core]", "# BEGIN X", "# END X", "tls=on"];
  const text = fc
    .tuple(fc.array(fc.constantFrom(...LINES), { maxLength: 10 }), fc.boolean())
    .map(([lines, newline]) => (lines.length ? lines.join("\n") + (newline ? "\n" : "") : ""));
  const anchor: fc.Arbitrary<Anchor> = fc.oneof(
    fc.constant<Anchor>({ kind: "eof" }),
    fc.constant<Anchor>({ kind: "bof" }),
    fc.constant<Anchor>({ kind: "after", pattern: /^\[core\]/ }),
    fc.constant<Anchor>({ kind: "before", pattern: /^name=/ }),
  );
  const line = fc.constantFrom("port=8080", "name=a", "tls=off", "");
  const regexp = fc.option(fc.constantFrom(/^port=/, /^name=/, /^tls=/, /=/), { nil: undefined });

  it("editLine applied twice equals editLine applied once (present and absent)", () => {
    fc.assert(
      fc.property(text, line, regexp, anchor, fc.boolean(), (t, l, r, a, present) => {
        const spec = present
          ? { state: "present" as const, line: l, anchor: a, ...(r ? { regexp: r } : {}) }
          : { state: "absent" as const, line: l, ...(r ? { regexp: r } : {}) };
        const once = editLine(t, spec);
        expect(editLine(once, spec)).toBe(once);
      }),
      RUNS,
    );
  });

  it("editBlock applied twice equals editBlock applied once, even beside stray markers", () => {
    const block = fc.array(fc.constantFrom("a=1", "b=2", "", "port=3"), { maxLength: 4 });
    fc.assert(
      fc.property(text, block, anchor, fc.boolean(), (t, body, a, present) => {
        const spec = {
          state: present ? ("present" as const) : ("absent" as const),
          block: body.length ? body.join("\n") + "\n" : "",
          begin: "# BEGIN X",
          end: "# END X",
          anchor: a,
        };
        const once = editBlock(t, spec);
        expect(editBlock(once, spec)).toBe(once);
      }),
      RUNS,
    );
  });
});

describe("counterexamples the properties found, kept as plain cases", () => {
  it("a line the regexp does not match, already present, is not written over the next match", () => {
    const spec = {
      state: "present" as const,
      line: "port=8080",
      regexp: /^name=/,
      anchor: { kind: "bof" as const },
    };
    const once = editLine("name=a\nname=a\n", spec);
    expect(once).toBe("name=a\nport=8080\n");
    expect(editLine(once, spec)).toBe(once);
  });

  it("a stray begin marker does not swallow the block inserted after it", () => {
    const spec = {
      state: "present" as const,
      block: "a=1\n",
      begin: "# BEGIN X",
      end: "# END X",
      anchor: { kind: "eof" as const },
    };
    const once = editBlock("# BEGIN X\n", spec);
    expect(once).toBe("# BEGIN X\n# BEGIN X\na=1\n# END X\n");
    expect(editBlock(once, spec)).toBe(once);
  });

  it("state absent removes every copy of the block at once", () => {
    const spec = {
      state: "absent" as const,
      block: "",
      begin: "# BEGIN X",
      end: "# END X",
      anchor: { kind: "eof" as const },
    };
    expect(editBlock("# BEGIN X\n# END X\nkeep\n# BEGIN X\n# END X\n", spec)).toBe("keep\n");
  });
});
