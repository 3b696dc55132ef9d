import { inspect } from "node:util";
import { existsSync, readFileSync, statSync } from "node:fs";
import { callerFrames, callerLocation } from "./dsl/task.js";
import { inputError, OmensError, type Where } from "./errors.js";
import { baoSettingsFromEnv, readKvField } from "./openbao.js";

const MASK = "********";

/**
 * A value that must never be printed. It renders into files through `reveal()` only;
 * every other conversion (string, JSON, util.inspect) gives a mask.
 *
 * @example
 * const token = Secret.fromEnv("SPIRE_JOIN_TOKEN");
 * template({ src: "agent.conf.hbs", dest: "/etc/spire/agent.conf", vars: { token } });
 */
export class Secret {
  readonly #value: string;
  readonly label: string;

  constructor(value: string, label = "secret") {
    this.#value = value;
    this.label = label;
    registerSecretValue(value);
  }

  /** The secret from an environment variable; a missing variable is an input error. */
  static fromEnv(name: string): Secret {
    const value = process.env[name];
    if ((value === undefined || value === "") && placeholders) return placeholder(`env:${name}`);
    if (value === undefined || value === "") {
      throw inputError(
        "usage",
        "SECRET_ENV_MISSING",
        `environment variable ${name} is not set`,
        callerLocation(),
      );
    }
    return new Secret(value, `env:${name}`);
  }

  /** The secret from a file that only its owner may read (mode 0600 or tighter). */
  static fromFile(path: string): Secret {
    if (placeholders && !existsSync(path)) return placeholder(`file:${path}`);
    if (!existsSync(path))
      throw inputError(
        "usage",
        "SECRET_FILE_MISSING",
        `secret file ${path} does not exist`,
        callerLocation(),
      );
    const mode = statSync(path).mode & 0o077;
    if (mode !== 0) {
      throw inputError(
        "usage",
        "SECRET_FILE_MODE",
        `secret file ${path} is readable by group or others (mode ${(statSync(path).mode & 0o777).toString(8)})`,
        { file: path },
        `chmod 600 ${path}`,
      );
    }
    return new Secret(readFileSync(path, "utf8").replace(/\r?\n$/, ""), `file:${path}`);
  }

  /**
   * One field of an OpenBao KV v2 secret, read over HTTPS when the playbook loads, with
   * BAO_ADDR, BAO_TOKEN and BAO_CACERT as the bao CLI uses them. The token is masked too.
   *
   * @example
   * const dbPassword = await Secret.fromOpenBao("secret/omens/db", "password");
   */
  static async fromOpenBao(path: string, field: string): Promise<Secret> {
    const label = `openbao:${path}#${field}`;
    if (placeholders && !process.env.BAO_TOKEN) return placeholder(label);
    // Taken now: after the first await the stack no longer leads to the playbook.
    const where = callerLocation();
    try {
      const settings = baoSettingsFromEnv();
      registerSecretValue(settings.token);
      return new Secret(await readKvField(settings, path, field), label);
    } catch (error) {
      throw error instanceof OmensError ? error.at(where) : error;
    }
  }

  /** The plain value, for rendering into a file or a command's stdin. */
  reveal(): string {
    return this.#value;
  }

  /**
   * The mask, for the engine's and libraries' messages. Playbook or role code that turns a
   * Secret into text (`password=${token}`) is refused at that line instead: the host would
   * get the mask where the value belongs, and no run would notice.
   */
  toString(): string {
    const at = textCaller(this.toString);
    if (at)
      throw inputError(
        "playbook",
        "SECRET_AS_TEXT",
        `a Secret (${this.label}) is turned into text here, which would write "${MASK}" where its value belongs`,
        at,
        `give the Secret itself (content: token, a template variable, a command's argv or stdin), or build the text as a Secret: new Secret(\`password=\${token.reveal()}\`)`,
      );
    return MASK;
  }

  toJSON(): string {
    return MASK;
  }

  [inspect.custom](): string {
    return `Secret(${this.label})`;
  }
}

/**
 * Where the code that converted a Secret to text is, when it is a playbook's or role's rather
 * than the engine's or a library's.
 */
function textCaller(convert: () => string): Where | undefined {
  const [first] = callerFrames(convert);
  return first && !first.engine ? first.where : undefined;
}

let placeholders = false;

/**
 * Lint only: a missing secret source gives a placeholder instead of an error, so playbooks can
 * be checked in CI where no secret exists. Never called on the path of a real run.
 */
export function usePlaceholderSecrets(): void {
  placeholders = true;
}

function placeholder(label: string): Secret {
  return new Secret(`omens-lint-placeholder(${label})`, label);
}

/** True for values of the Secret type. */
export function isSecret(value: unknown): value is Secret {
  return value instanceof Secret;
}

const knownSecrets = new Set<string>();

/** Remembers a value so that every output path can mask it, whatever carries it. */
export function registerSecretValue(value: string): void {
  // Very short values would mask ordinary words; they are still never printed as Secrets.
  if (value.length >= 4) knownSecrets.add(value);
}

/** Replaces every known secret value in a text with the mask. */
export function maskSecrets(text: string): string {
  let masked = text;
  for (const value of knownSecrets) {
    if (masked.includes(value)) masked = masked.split(value).join(MASK);
  }
  return masked;
}

/** Why a diff is withheld when the task's arguments carry a Secret. */
export const SECRET_DIFF = "contains a secret";

/**
 * True when a task's arguments hold a Secret anywhere (template vars, lines, argv): its diff
 * is withheld, because the file's old text may hold an earlier value of the same secret.
 */
export function carriesSecret(value: unknown, depth = 0): boolean {
  if (isSecret(value)) return true;
  if (depth > 8 || value === null || typeof value !== "object") return false;
  const items = Array.isArray(value) ? value : Object.values(value as Record<string, unknown>);
  return items.some((item) => carriesSecret(item, depth + 1));
}

/** The mask that stands in for a secret in output. */
export const SECRET_MASK = MASK;
