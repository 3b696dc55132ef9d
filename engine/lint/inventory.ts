import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject } from "ajv";
import { OmensError } from "../errors.js";
import { loadInventory, parseInventoryText, position, type Inventory } from "../inventory/load.js";
import { inventorySchema, keyPath, pointerKeys } from "../inventory/schema.js";
import type { Finding } from "./finding.js";

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(inventorySchema);

/**
 * Checks an inventory file against its schema and reports every error, then loads it the way
 * a run does (groups, cycles, duplicate hosts). Gives no inventory when it cannot be used.
 */
export function lintInventory(file: string): { inventory?: Inventory; findings: Finding[] } {
  const schemaFindings = schemaProblems(file);
  if (schemaFindings.length > 0) return { findings: schemaFindings };
  try {
    return { inventory: loadInventory(file), findings: [] };
  } catch (error) {
    if (!(error instanceof OmensError)) throw error;
    const where = { ...error.where, file: error.where.file ?? file };
    return { findings: [{ rule: "inventory-schema", message: error.message, where }] };
  }
}

/** Schema errors with their YAML positions; YAML syntax errors are left to the loader. */
function schemaProblems(file: string): Finding[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  const { doc, lines } = parseInventoryText(text);
  if (doc.errors.length > 0 || validate(doc.toJS())) return [];
  const seen = new Set<string>();
  const findings: Finding[] = [];
  for (const error of specific(validate.errors ?? [])) {
    const path = errorPath(error);
    const message = `${path.length > 0 ? `"${keyPath(path)}"` : "the document"} ${describe(error)}`;
    if (seen.has(message)) continue;
    seen.add(message);
    findings.push({ rule: "inventory-schema", message, where: position(doc, lines, path, file) });
  }
  return findings;
}

/** Drops the errors of a schema branch when a deeper error explains the same value. */
function specific(errors: ErrorObject[]): ErrorObject[] {
  return errors.filter(
    (e) =>
      e.keyword !== "if" &&
      !errors.some((o) => o !== e && o.instancePath.startsWith(`${e.instancePath}/`)),
  );
}

function errorPath(error: ErrorObject): string[] {
  const path = pointerKeys(error.instancePath);
  const params = error.params as { additionalProperty?: string; propertyName?: string };
  // A key's own pattern error carries the key on the error, its propertyNames error in params.
  const key = params.propertyName ?? (error as { propertyName?: string }).propertyName;
  if (params.additionalProperty) path.push(params.additionalProperty);
  if (key) path.push(key);
  return path;
}

function describe(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "additionalProperties":
      return "is not a known setting";
    case "type":
      return `must be ${String(params.type)}`;
    case "enum":
      return `must be one of ${JSON.stringify(params.allowedValues)}`;
    case "propertyNames":
    case "pattern":
      return "is not a valid name";
    default:
      return error.message ?? "is invalid";
  }
}
