import { variableSource } from "../../inventory/load.js";
import { keyPath } from "../../inventory/schema.js";
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

/** Words before "key" or "keys" that make it a public or host key, not a secret. */
const PUBLIC_KEY_WORDS = new Set(["public", "ssh", "authorized", "host"]);

/**
 * A name that holds a secret: its last word is password, token, secret, key... or their
 * plural (`joinToken`, `db_password`, `unsealKeys`), but not `publicKey`, `sshKeys`,
 * `tokenTtl` or `keyFile`.
 * Known limit: it is a naming rule; a secret under another name (`jt`) is not seen.
 */
export function isSecretName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[\s_.-]+/)
    .filter(Boolean);
  const last = words.at(-1) ?? "";
  const singular =
    last.endsWith("s") && SECRET_WORDS.has(last.slice(0, -1)) ? last.slice(0, -1) : last;
  if (!SECRET_WORDS.has(singular)) return false;
  return !(singular === "key" && PUBLIC_KEY_WORDS.has(words.at(-2) ?? ""));
}

/** Schemes of references to where a secret is kept (KMS URIs, environment, files, vaults). */
const REFERENCE =
  /^(yubikey|pkcs11|tpmkms|awskms|gcpkms|cloudkms|azurekms|softkms|sshagentkms|capi|env|file|vault|openbao|bao|op):\S/i;

/**
 * A plain value that could be a secret: a non-empty string or a number (a PIN), not a path
 * to one, and not a reference to where one is kept (`yubikey:slot-id=9c`, `pkcs11:...`,
 * `env:NAME`). `admin:hunter2` is a secret, not a reference.
 */
export function isPlainSecretValue(value: unknown): value is string | number {
  if (typeof value === "number") return Number.isFinite(value);
  return (
    typeof value === "string" &&
    value.trim() !== "" &&
    !/^(\/|\.\.?\/|~\/)/.test(value) &&
    !/\.(pem|key|crt|der|json|txt)$/.test(value) &&
    !REFERENCE.test(value)
  );
}

/**
 * The keys leading to plain secrets anywhere inside a value (`["db", "password"]`, also
 * inside lists: `["users", "0", "password"]`): a secret-named key holding a plain value, or a
 * list with one (`unsealKeys: [k1, k2]`).
 */
function plainSecrets(value: unknown, prefix: string[] = [], seen = new Set<object>()): string[][] {
  if (!value || typeof value !== "object" || isSecret(value) || seen.has(value)) return [];
  seen.add(value);
  const entries = Array.isArray(value)
    ? value.map((item, i) => [String(i), item] as const)
    : Object.entries(value as Record<string, unknown>);
  return entries.flatMap(([key, item]) => {
    const path = [...prefix, key];
    if (!Array.isArray(value) && isSecretName(key)) {
      if (isPlainSecretValue(item)) return [path];
      if (Array.isArray(item) && item.some((v) => isPlainSecretValue(v))) return [path];
    }
    return plainSecrets(item, path, seen);
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
        for (const keys of plainSecrets({ [name]: value })) {
          const path = keyPath(keys, { [name]: value });
          const origin = variableSource(host, name, keys.slice(1));
          const source = origin?.label ?? `inventory ${inventory.file}`;
          const where = origin?.where ?? sourceWhere(source) ?? { file: inventory.file };
          const message = `variable "${path}" holds a plain value (set in ${shortSource(source)}); ${ADVICE}`;
          found.set(`${placeKey(where)}|${path}`, { rule: "secret-plain-var", message, where });
        }
  return [...found.values()];
}

function playSecrets(model: LintModel): Finding[] {
  const findings: Finding[] = [];
  const finding = (play: Play, where: Where, path: string, what: string): Finding => ({
    rule: "secret-plain-var",
    message: `${what} "${path}" holds a plain value; ${ADVICE}`,
    where,
    play,
  });
  for (const { playbook } of model.playbooks)
    for (const play of playbook.plays) {
      for (const keys of plainSecrets(play.vars))
        findings.push(finding(play, play.where, keyPath(keys, play.vars), "play variable"));
      for (const use of play.roles ?? []) {
        const role = `role ${use.role.name}`;
        for (const keys of plainSecrets(use.params))
          findings.push(finding(play, use.where, keyPath(keys, use.params), `${role} parameter`));
        for (const keys of plainSecrets(use.role.defaults))
          findings.push(
            finding(play, use.where, keyPath(keys, use.role.defaults), `${role} default`),
          );
      }
    }
  return findings;
}

function taskSecrets(model: LintModel): Finding[] {
  return [...allTasks(model)].flatMap(({ item }) =>
    plainSecrets(item.task.args).map((keys) =>
      taskFinding(
        "secret-plain-var",
        item.task,
        `${taskTitle(item.task, item.label)}: "${keyPath(keys, item.task.args)}" holds a plain value; ${ADVICE}`,
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
function secretArgs(value: unknown, prefix = "", seen = new Set<object>()): string[] {
  if (isSecret(value)) return [prefix || "value"];
  if (!value || typeof value !== "object" || seen.has(value)) return [];
  seen.add(value);
  if (Array.isArray(value))
    return value.flatMap((item, i) => secretArgs(item, `${prefix}[${i}]`, seen));
  return Object.entries(value as Record<string, unknown>).flatMap(([key, item]) =>
    secretArgs(item, prefix ? `${prefix}.${key}` : key, seen),
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
