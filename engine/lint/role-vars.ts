import type { Where } from "../errors.js";
import { variableSource, type InventoryHost } from "../inventory/load.js";
import type { RoleUse } from "../dsl/role.js";
import type { Play } from "../dsl/playbook.js";
import { roleVarSource, subjectPath, valueAt, type VarErrorSubject } from "../runner/compile.js";
import type { Finding } from "./finding.js";
import { displayPath } from "./format/display-path.js";
import { nearNames } from "../near-names.js";

/**
 * One role variable that does not fit the role's schema on one host, located where the value
 * came from: the inventory line for inventory values, the role's use in the play otherwise.
 */
export function varProblem(
  subject: VarErrorSubject,
  {
    use,
    host,
    vars,
    play,
  }: { use: RoleUse; host: InventoryHost; vars: Record<string, unknown>; play: Play },
): Finding {
  const { name, dotted } = subject;
  const role = `role ${use.role.name}`;
  if (subject.kind === "missing" && subject.key === undefined) return missing(name, use, host);
  const found = roleVarSource(name, { use, host, play }, subjectPath(subject));
  const source = found
    ? { label: shortSource(found.label), where: found.where }
    : { label: `the defaults of role ${use.role.name}`, where: use.where };
  const message =
    subject.kind === "missing"
      ? `${role}: variable "${dotted}" is missing (in the value from ${source.label})`
      : subject.kind === "unknown"
        ? subject.key
          ? `${role}: unknown key "${dotted}" (from ${source.label})`
          : `${role}: unknown variable "${name}" (from ${source.label}); the role declares: ${declared(use)}`
        : `${role}: variable "${dotted}" ${subject.message} (got ${JSON.stringify(valueAt(vars[name], subject.inside))?.slice(0, 60)}, from ${source.label})`;
  return { rule: "role-vars", message, where: source.where, hosts: [host.name] };
}

function missing(name: string, use: RoleUse, host: InventoryHost): Finding {
  const base = `role ${use.role.name}: variable "${name}" is missing`;
  const near = nearNames(name, Object.keys(host.vars)).flatMap((n) => {
    const source = variableSource(host, n);
    return source ? [{ name: n, ...source }] : [];
  });
  const [first] = near;
  if (!first) return { rule: "role-vars", message: base, where: use.where, hosts: [host.name] };
  const sets = near.map((n) => `"${n.name}" in ${shortSource(n.label)}`).join(" and ");
  return {
    rule: "role-vars",
    message: `${base}; the inventory sets ${sets}: misspelt?`,
    where: first.where,
    hosts: [host.name],
  };
}

/** The file:line inside an inventory source label such as "group all (inv.yaml:12)". */
export function sourceWhere(label: string): Where | undefined {
  const match = /\((.+):(\d+)\)$/.exec(label);
  return match ? { file: match[1], line: Number(match[2]) } : undefined;
}

/** An inventory source label with its file shown relative to the working folder. */
export function shortSource(label: string): string {
  const where = sourceWhere(label);
  return where?.file ? label.replace(where.file, displayPath(where.file)) : label;
}

function declared(use: RoleUse): string {
  return Object.keys(use.role.schema.properties ?? {}).join(", ") || "none";
}
