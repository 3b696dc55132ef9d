import { variableSource } from "../../inventory/load.js";
import { isSecret } from "../../secret.js";
import type { Play } from "../../dsl/playbook.js";
import type { Where } from "../../errors.js";
import type { LintTask } from "../expand.js";
import { placeKey, taskFinding, taskTitle, type Finding, type Rule } from "../finding.js";
import { allTasks, type LintModel } from "../model.js";
import { shortSource, sourceWhere } from "../role-vars.js";
import { namesUsed, templateSource } from "../template-source.js";

const SECRET_WORDS = new Set([
  "password",
  "passwd",
  "passphrase",
  "secret",
  "token",
  "key",
  "apikey",
  "credential",
  "credentials",
]);

/**
 * A name that holds a secret: its last word is password, token, secret, key... (`joinToken`,
 * `db_password`, `unsealKey`), but not `publicKey`, `tokenTtl` or `keyFile`.
 * Known limit: it is a naming rule; a secret under another name (`jt`) is not seen.
 */
export function isSecretName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[\s_.-]+/)
    .filter(Boolean);
  const last = words.at(-1) ?? "";
  return SECRET_WORDS.has(last) && words.at(-2) !== "public";
}

/**
 * A plain string that could be a secret: not empty, not a path to one, and not a reference
 * to where one is kept (`yubikey:slot-id=9c`, `pkcs11:...`, `env:NAME`).
 */
export function isPlainSecretValue(value: unknown): value is string {
  return (
    typeof value === "string" &&
    value.trim() !== "" &&
    !/^(\/|\.\.?\/|~\/)/.test(value) &&
    !/\.(pem|key|crt|der|json|txt)$/.test(value) &&
    !/^[a-z][a-z0-9+.-]*:[^/\s]/i.test(value)
  );
}

/** Paths (`db.password`) of secret-named keys holding plain strings, anywhere inside a value. */
function plainSecrets(value: unknown, prefix = ""): string[] {
  if (!value || typeof value !== "object" || isSecret(value) || Array.isArray(value)) return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, item]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    if (isSecretName(key) && isPlainSecretValue(item)) return [path];
    return plainSecrets(item, path);
  });
}

const ADVICE = "use a Secret (Secret.fromEnv or Secret.fromFile) so no output shows it";

export const secretPlainVar: Rule = {
  id: "secret-plain-var",
  rationale:
    "A password, token or key in a plain variable ends up in logs, diffs and the repository; Secrets are masked.",
  level: "error",
  silencedBy: "task or inventory",
  check: (model) => [...inventorySecrets(model), ...playSecrets(model), ...taskSecrets(model)],
};

function inventorySecrets(model: LintModel): Finding[] {
  const found = new Map<string, Finding>();
  for (const inventory of model.inventories)
    for (const host of inventory.hosts.values())
      for (const [name, value] of Object.entries(host.vars))
        for (const path of plainSecrets({ [name]: value })) {
          const source = variableSource(host, name)?.label ?? `inventory ${inventory.file}`;
          const where = sourceWhere(source) ?? { file: inventory.file };
          const message = `variable "${path}" holds a plain string (set in ${shortSource(source)}); ${ADVICE}`;
          found.set(`${placeKey(where)}|${path}`, { rule: "secret-plain-var", message, where });
        }
  return [...found.values()];
}

function playSecrets(model: LintModel): Finding[] {
  const findings: Finding[] = [];
  const finding = (play: Play, where: Where, path: string, what: string): Finding => ({
    rule: "secret-plain-var",
    message: `${what} "${path}" holds a plain string; ${ADVICE}`,
    where,
    play,
  });
  for (const { playbook } of model.playbooks)
    for (const play of playbook.plays) {
      for (const path of plainSecrets(play.vars))
        findings.push(finding(play, play.where, path, "play variable"));
      for (const use of play.roles ?? []) {
        const role = `role ${use.role.name}`;
        for (const path of plainSecrets(use.params))
          findings.push(finding(play, use.where, path, `${role} parameter`));
        for (const path of plainSecrets(use.role.defaults))
          findings.push(finding(play, use.where, path, `${role} default`));
      }
    }
  return findings;
}

function taskSecrets(model: LintModel): Finding[] {
  return [...allTasks(model)].flatMap(({ item }) =>
    plainSecrets(item.task.args).map((path) =>
      taskFinding(
        "secret-plain-var",
        item.task,
        `${taskTitle(item.task, item.label)}: "${path}" holds a plain string; ${ADVICE}`,
      ),
    ),
  );
}

export const secretNoLog: Rule = {
  id: "secret-no-log",
  rationale:
    "A Secret given to a task without noLog can surface in its output, diff or error (command output, rendered files).",
  level: "error",
  check: (model) =>
    [...allTasks(model)]
      .filter(({ item }) => !item.task.options.noLog)
      .flatMap(({ item }) => {
        const places = [...secretArgs(item.task.args), ...secretsRendered(item)];
        if (places.length === 0) return [];
        return [
          taskFinding(
            "secret-no-log",
            item.task,
            `${taskTitle(item.task, item.label)} is given a Secret (${places.join(", ")}) without noLog: its output, diff or error may show it`,
          ),
        ];
      }),
};

/** Paths of Secret values inside task arguments: `argv[2]`, `stdin`, `vars.token`. */
function secretArgs(value: unknown, prefix = ""): string[] {
  if (isSecret(value)) return [prefix || "value"];
  if (Array.isArray(value)) return value.flatMap((item, i) => secretArgs(item, `${prefix}[${i}]`));
  if (!value || typeof value !== "object") return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, item]) =>
    secretArgs(item, prefix ? `${prefix}.${key}` : key),
  );
}

/** Variables holding a Secret that a template task's template uses. */
function secretsRendered(item: LintTask): string[] {
  if (item.task.module !== "template" || typeof item.task.args.src !== "string") return [];
  const source = templateSource(item.task.args.src, item.baseDir);
  if (!source?.ast) return [];
  const vars = { ...item.vars, ...(item.task.args.vars as Record<string, unknown> | undefined) };
  const used = new Set(namesUsed(source.ast).map((n) => n.name));
  return [...used]
    .filter((name) => !(item.task.args.vars && name in (item.task.args.vars as object)))
    .filter((name) => secretArgs(vars[name]).length > 0)
    .map((name) => `template variable ${name}`);
}
