import type { InventoryHost } from "../../inventory/load.js";
import type { Finding, Rule } from "../finding.js";
import { allRuns, allTasks, type LintModel } from "../model.js";
import { isNearMiss, shortSource, sourceWhere } from "../role-vars.js";
import { namesUsed, templateSource } from "../template-source.js";

export const varMisspelt: Rule = {
  id: "var-misspelt",
  rationale:
    "An inventory variable no role, play or template reads is ignored; next to a role variable's name it is a misspelling, and the role runs on its default.",
  level: "error",
  check: (model) => {
    const used = namesRead(model);
    const found = new Map<string, Misspelt>();
    for (const [host, declared] of hostRoles(model)) misspelt(host, declared, used, found);
    return [...found.values()].map(finding);
  },
};

interface Declared {
  role: string;
  name: string;
  default?: unknown;
  /** The play passes it as a parameter. */
  given: boolean;
}

/** Every variable name something in the linted playbooks reads, on any host. */
function namesRead(model: LintModel): Set<string> {
  const names = new Set<string>();
  for (const run of allRuns(model)) {
    for (const name of Object.keys(run.play.vars ?? {})) names.add(name);
    for (const use of run.play.roles ?? [])
      for (const name of Object.keys(use.role.schema.properties ?? {})) names.add(name);
  }
  for (const { item } of allTasks(model)) {
    if (item.task.module !== "template" || item.args === undefined) continue;
    const ast = templateSource((item.args as { src: string }).src, item.baseDir)?.ast;
    for (const used of ast ? namesUsed(ast) : []) names.add(used.name);
  }
  return names;
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
            given: name in use.params,
          });
    }
  return byHost;
}

/** One inventory line whose variable looks like a role variable's name, on every host it reaches. */
interface Misspelt {
  name: string;
  source: string;
  near: string;
  roles: Set<string>;
  defaults: Set<string>;
  hosts: string[];
}

/**
 * The host's inventory variables that nothing reads and whose name is one or two edits from
 * a variable a role on the host declares. Known limit: a variable read only by a play's own
 * task builder (`tasks: (vars) => ...`) is not seen as read; such a line is silenced with
 * `# omens-lint: skip var-misspelt: <reason>`.
 */
function misspelt(
  host: InventoryHost,
  declared: Declared[],
  used: Set<string>,
  found: Map<string, Misspelt>,
) {
  for (const name of Object.keys(host.vars)) {
    if (used.has(name)) continue;
    const near = declared.find((d) => isNearMiss(name, d.name));
    if (!near || reportedMissing(near, host)) continue;
    const source = host.varSources[name] ?? "the inventory";
    const key = `${source}|${name}|${near.name}`;
    const entry = found.get(key) ?? {
      name,
      source,
      near: near.name,
      roles: new Set(),
      defaults: new Set(),
      hosts: [],
    };
    found.set(key, entry);
    if (!entry.hosts.includes(host.name)) entry.hosts.push(host.name);
    for (const d of declared.filter((d) => d.name === near.name)) {
      entry.roles.add(d.role);
      // The default is what runs instead, unless the host also sets the right name.
      if (!(near.name in host.vars)) entry.defaults.add(JSON.stringify(d.default));
    }
  }
}

/** A required variable the host lacks is a role-vars finding, which names this one already. */
function reportedMissing(near: Declared, host: InventoryHost): boolean {
  return near.default === undefined && !near.given && !(near.name in host.vars);
}

function finding(m: Misspelt): Finding {
  const roles = [...m.roles].sort();
  const [only] = m.defaults;
  const fallback =
    m.defaults.size === 1 && only !== undefined
      ? `; ${roles.length > 1 ? "they run" : "it runs"} with the default ${only}`
      : "";
  return {
    rule: "var-misspelt",
    message: `variable "${m.name}" (set in ${shortSource(m.source)}) is read by no role, play or template, but ${roles.length > 1 ? "roles" : "role"} ${roles.join(", ")} declare${roles.length > 1 ? "" : "s"} "${m.near}"${fallback}: misspelt?`,
    where: sourceWhere(m.source) ?? {},
    hosts: m.hosts,
  };
}
