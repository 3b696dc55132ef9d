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
  const { options, configFile, problems } = compilerOptions(dirname(files[0] as string));
  if (problems.length > 0) return problems.map((d) => toFinding(d, configFile));
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
  return diagnostics.map((d) => toFinding(d, configFile));
}

interface ConfigRead {
  options: ts.CompilerOptions;
  configFile?: string;
  /** The tsconfig.json does not parse, or holds options TypeScript does not know. */
  problems: readonly ts.Diagnostic[];
}

/**
 * The nearest tsconfig.json's options. Options TypeScript 6 keeps but deprecates (`baseUrl`)
 * still apply: lint checks the playbooks, not how long their tsconfig will stay valid.
 */
function compilerOptions(from: string): ConfigRead {
  const defaults: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true };
  const configFile = ts.findConfigFile(from, (f) => ts.sys.fileExists(f));
  if (!configFile) return { options: defaults, problems: [] };
  const read = ts.readConfigFile(configFile, (f) => ts.sys.readFile(f));
  if (read.error) return { options: defaults, configFile, problems: [read.error] };
  const parsed = ts.parseJsonConfigFileContent(read.config ?? {}, ts.sys, dirname(configFile));
  // An empty "include" or "files" says nothing about the playbooks lint was given.
  const problems = parsed.errors.filter((d) => d.code !== NO_INPUTS);
  const options = {
    ...parsed.options,
    ignoreDeprecations: "6.0",
    noEmit: true,
    skipLibCheck: true,
  };
  return { options, configFile, problems };
}

const NO_INPUTS = 18003;

/** A diagnostic with no file of its own is about the compiler options: it is placed at the tsconfig. */
function toFinding(diagnostic: ts.Diagnostic, configFile?: string): Finding {
  const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n  ");
  const text = `TS${diagnostic.code}: ${message}`;
  if (!diagnostic.file || diagnostic.start === undefined)
    return { rule: "type-error", message: text, where: configFile ? { file: configFile } : {} };
  const pos = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
  return {
    rule: "type-error",
    message: text,
    where: { file: diagnostic.file.fileName, line: pos.line + 1, column: pos.character + 1 },
  };
}
