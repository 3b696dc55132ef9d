import { parseArgs, type ParseArgsConfig } from "node:util";
import { inputError } from "./errors.js";
import { nearNames } from "./near-names.js";

/** node's parseArgs, whose errors (an unknown option, a missing value) are usage errors. */
export function parseUsage<T extends ParseArgsConfig>(usage: string, config: T) {
  try {
    return parseArgs(config);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"))
      throw inputError(
        "usage",
        "USAGE",
        `${usageProblem(error as Error, Object.keys(config.options ?? {}))}\n${usage}`,
      );
    throw error;
  }
}

// node's text for an unknown option ends in an unbalanced quote (as in '-- "--chek'), so that
// one is said here; node's other parse errors read well as they are.
function usageProblem(error: Error, known: string[]): string {
  const option = /^Unknown option '(.+?)'\./.exec(error.message)?.[1];
  if (option === undefined) return error.message;
  const near = option.startsWith("--")
    ? nearNames(
        option,
        known.map((name) => `--${name}`),
      )
    : [];
  if (near.length > 0) return `Unknown option '${option}'. Did you mean ${near.join(" or ")}?`;
  return `Unknown option '${option}'. A playbook file whose name starts with '-' goes after '--', as in: -- ${option}`;
}
