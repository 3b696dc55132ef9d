import { inputError, type Where } from "../errors.js";
import { isSecret } from "../secret.js";

/** Reads module arguments with errors that say what was expected and what was received. */
export class ArgReader {
  constructor(
    private readonly module: string,
    private readonly raw: Readonly<Record<string, unknown>>,
    private readonly where: Where,
    known: readonly string[],
  ) {
    for (const key of Object.keys(raw)) {
      if (!known.includes(key)) {
        this.fail(
          "ARG_UNKNOWN",
          `${module}: unknown argument "${key}" (expected one of: ${known.join(", ")})`,
        );
      }
    }
  }

  string(key: string): string {
    const value = this.raw[key];
    if (typeof value !== "string" || value === "")
      this.fail("ARG_TYPE", this.expected(key, "a non-empty string", value));
    return value as string;
  }

  optionalString(key: string): string | undefined {
    return this.raw[key] === undefined ? undefined : this.string(key);
  }

  /** A string that may be empty (file contents, lines). */
  text(key: string): string {
    const value = this.raw[key];
    if (typeof value !== "string") this.fail("ARG_TYPE", this.expected(key, "a string", value));
    return value as string;
  }

  /** Text that may be a Secret: its value, for writing into a file (output masks it). */
  textOrSecret(key: string): string {
    const value = this.raw[key];
    return isSecret(value) ? value.reveal() : this.text(key);
  }

  optionalBoolean(key: string): boolean | undefined {
    const value = this.raw[key];
    if (value !== undefined && typeof value !== "boolean")
      this.fail("ARG_TYPE", this.expected(key, "true or false", value));
    return value as boolean | undefined;
  }

  optionalNumber(key: string): number | undefined {
    const value = this.raw[key];
    if (value !== undefined && (typeof value !== "number" || !Number.isFinite(value))) {
      this.fail("ARG_TYPE", this.expected(key, "a number", value));
    }
    return value as number | undefined;
  }

  oneOf<T extends string>(key: string, choices: readonly T[], fallback?: T): T {
    const value = this.raw[key] ?? fallback;
    if (!choices.includes(value as T))
      this.fail(
        "ARG_VALUE",
        this.expected(key, `one of ${choices.map((c) => `"${c}"`).join(", ")}`, value),
      );
    return value as T;
  }

  stringList(key: string): string[] | undefined {
    const value = this.raw[key];
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === "string")) {
      this.fail("ARG_TYPE", this.expected(key, "a non-empty array of strings", value));
    }
    return value as string[];
  }

  /** A SHA-256: 64 hex digits, optionally prefixed "sha256:"; returned lower-cased. */
  sha256(key: string): string {
    const value = this.string(key).replace(/^sha256:/i, "");
    if (!/^[0-9a-fA-F]{64}$/.test(value))
      this.fail("ARG_VALUE", `${this.module}: "${key}" must be 64 hex digits, got "${value}"`);
    return value.toLowerCase();
  }

  /** The raw value, for module-specific checks. */
  value(key: string): unknown {
    return this.raw[key];
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined;
  }

  fail(code: string, message: string, hint?: string): never {
    throw inputError("playbook", code, message, this.where, hint);
  }

  private expected(key: string, what: string, value: unknown): string {
    const got =
      value === undefined ? "nothing" : (JSON.stringify(value)?.slice(0, 80) ?? typeof value);
    return `${this.module}: "${key}" must be ${what}, got ${got}`;
  }
}
