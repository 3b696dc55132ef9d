import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { allDefinedRoles } from "../../dsl/role.js";
import { originSource, type InventoryHost } from "../../inventory/load.js";
import type { Finding, Rule } from "../finding.js";
import { allRuns, allTasks, type LintModel } from "../model.js";
import { isNearMiss } from "../../near-names.js";
import { shortSource } from "../role-vars.js";
import { namesUsed, templateSource } from "../template-source.js";

export const varMisspelt: Rule = {
  id: "var-misspelt",
  rationale:
    "An inventory variable no role, play or template reads is ignored; one edit from a role variable's name, it is a misspelling, and the role runs without it.",
  level: "error",
  silencedBy: "inventory",
  check: (model) => {
    const read = namesRead(model);
    const found = new Map<string, Misspelt>();
    for (const [host, declared] of hostRoles(model)) misspelt(host, declared, read, found);
    return [...found.values()].map(finding);
  },
};

interface Declared {
  role: string;
  name: string;
  default?: unknown;
  /** The role's schema requires it. */
  required: boolean;
  /** The play passes it, as a role parameter or in its own `vars`. */
  given: boolean;
}

/**
 * Every variable name something reads: any role the loaded playbooks define (the inventory is
 * shared by playbooks that use other roles), the plays' own variables, every template in the
 * roles' and playbooks' `templates/` folders, and any name written as a word in the playbooks'
 * and roles' sources (`ctx.vars.prot` in a `when`, `vars.prot` in a task builder).
 */
function namesRead(model: LintModel): Set<string> {
  const names = new Set<string>();
  const folders = new Set(model.playbooks.map((p) => dirname(p.file)));
  for (const role of allDefinedRoles()) {
    folders.add(role.dir);
    for (const name of Object.keys(role.schema.properties ?? {})) names.add(name);
  }
  for (const run of allRuns(model))
    for (const name of Object.keys(run.play.vars ?? {})) names.add(name);
  for (const { item } of allTasks(model)) {
    if (item.task.module !== "template" || item.args === undefined) continue;
    const ast = templateSource((item.args as { src: string }).src, item.baseDir)?.ast;
    for (const used of ast ? namesUsed(ast) : []) names.add(used.name);
  }
  // A playbook's own folder is among them, so its source is read there.
  for (const folder of folders) for (const word of wordsIn(folder)) names.add(word);
  return names;
}

const wordCache = new Map<string, Set<string>>();

/** The words of a folder's `.ts` sources and of the templates under its `templates/`. */
function wordsIn(folder: string): Set<string> {
  const cached = wordCache.get(folder);
  if (cached) return cached;
  const found = new Set<string>();
  const add = (file: string) => words(file).forEach((w) => found.add(w));
  for (const name of list(folder)) if (/\.m?ts$/.test(name)) add(join(folder, name));
  const templates = join(folder, "templates");
  for (const name of list(templates, true)) if (name.endsWith(".hbs")) add(join(templates, name));
  wordCache.set(folder, found);
  return found;
}

function list(folder: string, recursive = false): string[] {
  try {
    return readdirSync(folder, { recursive }).map(String);
  } catch {
    return [];
  }
}

function words(file: string): string[] {
  try {
    return readFileSync(file, "utf8").match(/[A-Za-z_$][\w$]*/g) ?? [];
  } catch {
    return [];
  }
}

/** Each inventory host with the role variables declared by the roles it runs. */
function hostRoles(model: LintModel): Map<InventoryHost, Declared[]> {
  const byHost = new Map<InventoryHost, Declared[]>();
  for (const run of allRuns(model))
    for (const { host } of run.hosts) {
      const declared = byHost.get(host) ?? [];
      byHost.set(host, declared);
      for (const use of run.play.roles ?? [])
        for (const [name, schema] of Object.entries(use.role.schema.properties ?? {}))
          declared.push({
            role: use.role.name,
            name,
            default: use.role.defaults?.[name] ?? (schema as { default?: unknown }).default,
            required: use.role.schema.required?.includes(name) ?? false,
            given: name in use.params || name in (run.play.vars ?? {}),
          });
    }
  return byHost;
}

/** One inventory line whose variable looks like a role variable's name, on every host it reaches. */
interface Misspelt {
  name: string;
  label: string;
  where: Finding["where"];
  near: string;
  roles: Set<string>;
  /** The defaults the roles run with instead; empty when the host or play sets the right name. */
  defaults: Set<string>;
  overridden: boolean;
  hosts: string[];
}

/**
 * The host's inventory variables that nothing reads and whose name is one edit from a variable
 * a role on the host declares: every line that sets one, also those a nearer group or the host
 * overrides. Known limit: a variable read under a computed name (`vars[key]`) or only by code
 * outside the playbooks' and roles' folders is not seen as read; its line is silenced with
 * `# omens-lint: skip var-misspelt: <reason>`.
 */
function misspelt(
  host: InventoryHost,
  declared: Declared[],
  read: Set<string>,
  found: Map<string, Misspelt>,
) {
  for (const name of Object.keys(host.vars)) {
    if (read.has(name)) continue;
    const near = declared.find((d) => isNearMiss(name, d.name, 1));
    if (!near || reportedMissing(near, host)) continue;
    const same = declared.filter((d) => d.name === near.name);
    for (const origin of Object.hasOwn(host.varDefinitions, name)
      ? (host.varDefinitions[name] ?? [])
      : []) {
      const source = originSource(host, origin);
      if (!source) continue;
      const key = `${source.label}|${name}|${near.name}`;
      const entry = found.get(key) ?? {
        name,
        ...source,
        near: near.name,
        roles: new Set(),
        defaults: new Set(),
        overridden: false,
        hosts: [],
      };
      found.set(key, entry);
      if (!entry.hosts.includes(host.name)) entry.hosts.push(host.name);
      for (const d of same) {
        entry.roles.add(d.role);
        if (d.given || Object.hasOwn(host.vars, near.name)) entry.overridden = true;
        else entry.defaults.add(JSON.stringify(d.default));
      }
    }
  }
}

/** A required variable the host lacks is a role-vars finding, which names this one already. */
function reportedMissing(near: Declared, host: InventoryHost): boolean {
  return (
    near.required &&
    near.default === undefined &&
    !near.given &&
    !Object.hasOwn(host.vars, near.name)
  );
}

function finding(m: Misspelt): Finding {
  const roles = [...m.roles].sort();
  const several = roles.length > 1;
  const [only] = m.defaults;
  const fallback =
    !m.overridden && m.defaults.size === 1 && only !== undefined
      ? `; ${several ? "they run" : "it runs"} with the default ${only}`
      : "";
  return {
    rule: "var-misspelt",
    message: `variable "${m.name}" (set in ${shortSource(m.label)}) is read by no role, play or template, but ${several ? "roles" : "role"} ${roles.join(", ")} declare${several ? "" : "s"} "${m.near}"${fallback}: misspelt?`,
    where: m.where,
    hosts: m.hosts,
  };
}
