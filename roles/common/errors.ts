import { inputError, taskError } from "../../engine/errors.js";

/** A role's variables that fit its schema but not each other; found before any host is contacted. */
export function roleVarsError(role: string, message: string) {
  return inputError("playbook", "ROLE_VARS_CONFLICT", `role ${role}: ${message}`);
}

/** A value a task needs at run time (from an earlier task) is missing or malformed. */
export function missingValueError(message: string) {
  return taskError("ROLE_VALUE_MISSING", message);
}
