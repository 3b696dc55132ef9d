import { dirname, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import type { Finding } from "./finding.js";

const ENGINE_DIR = dirname(dirname(fileURLToPath(import.meta.url))) + sep;

/**
 * Type-checks playbooks and the project files they import (roles, their variables' schemas)
 * with the compiler options of the nearest tsconfig.json. The engine's own files and
 * node_modules are used for their types but not checked: the engine's CI checks itself, and
 * skipping its bodies keeps lint fast.
 */
export function typecheck(files: string[]): Finding[] {
  if (files.length === 0) return [];
  const options = compilerOptions(dirname(files[0] as string));
  const program = ts.createProgram({ rootNames: files, options });
  const own = program
    .getSourceFiles()
    .filter((f) => !f.fileName.includes(`${sep}node_modules${sep}`))
    .filter((f) => !f.fileName.startsWith(ENGINE_DIR) && !f.isDeclarationFile);
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...own.flatMap((f) => [
      ...program.getSyntacticDiagnostics(f),
      ...program.getSemanticDiagnostics(f),
    ]),
  ];
  return diagnostics.map(toFinding);
}

function compilerOptions(from: string): ts.CompilerOptions {
  const defaults: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true };
  const configFile = ts.findConfigFile(from, (f) => ts.sys.fileExists(f));
  if (!configFile) return defaults;
  const read = ts.readConfigFile(configFile, (f) => ts.sys.readFile(f));
  const parsed = ts.parseJsonConfigFileContent(read.config ?? {}, ts.sys, dirname(configFile));
  return { ...parsed.options, noEmit: true, skipLibCheck: true };
}

function toFinding(diagnostic: ts.Diagnostic): Finding {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n  ");
  const text = `TS${diagnostic.code}: ${message}`;
  if (!diagnostic.file || diagnostic.start === undefined)
    return { rule: "type-error", message: text, where: {} };
  const pos = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return {
    rule: "type-error",
    message: text,
    where: { file: diagnostic.file.fileName, line: pos.line + 1, column: pos.character + 1 },
  };
}
