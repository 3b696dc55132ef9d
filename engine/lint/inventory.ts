import { readFileSync } from "node:fs";
import { OmensError } from "../errors.js";
import {
  inventoryData,
  isEmptyInventory,
  loadInventory,
  parseInventoryText,
  position,
  yamlProblems,
  type Inventory,
} from "../inventory/load.js";
import { inventorySchemaProblems } from "../inventory/schema.js";
import type { Finding } from "./finding.js";

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

/** YAML syntax errors, all of them, or else schema errors with their YAML positions. */
function schemaProblems(file: string): Finding[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  if (isEmptyInventory(text)) return []; // the loader says so below
  const { doc, lines } = parseInventoryText(text);
  if (doc.errors.length > 0)
    return yamlProblems(doc, lines, file, text).map(({ message, where }) => ({
      rule: "inventory-schema",
      message,
      where,
    }));
  let data: unknown;
  try {
    data = inventoryData(doc, lines, file);
  } catch (error) {
    // The loader refuses the same document below, and says why.
    if (error instanceof OmensError) return [];
    throw error;
  }
  return inventorySchemaProblems(data).map(({ path, message }) => ({
    rule: "inventory-schema",
    message,
    where: position(doc, lines, path, file),
  }));
}
