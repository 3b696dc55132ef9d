import { readFileSync } from "node:fs";
import Handlebars from "handlebars";
import { findTemplate } from "../modules/template.js";

/** A template file as lint reads it: its path, text and handlebars syntax tree. */
export interface TemplateSource {
  file: string;
  text: string;
  /** Absent when the text does not parse; rendering reports the syntax error. */
  ast?: hbs.AST.Program;
}

const cache = new Map<string, TemplateSource | undefined>();

/** Finds and parses a template the way the template module does; undefined when missing. */
export function templateSource(src: string, baseDir: string): TemplateSource | undefined {
  const key = `${baseDir}\0${src}`;
  if (!cache.has(key)) cache.set(key, readSource(src, baseDir));
  return cache.get(key);
}

function readSource(src: string, baseDir: string): TemplateSource | undefined {
  for (const file of findTemplate(src, baseDir)) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    try {
      return { file, text, ast: Handlebars.parse(text) };
    } catch {
      return { file, text };
    }
  }
  return undefined;
}

/** A path or helper name used in a template, with where it is written (1-based). */
export interface TemplateName {
  name: string;
  line: number;
  column: number;
}

/** Every path expression's first segment (or the one after `@root`): the variables and helpers a template uses. */
export function namesUsed(ast: hbs.AST.Program): TemplateName[] {
  const names: TemplateName[] = [];
  const visit = (node: unknown) => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== "object") return;
    const record = node as {
      type?: string;
      parts?: unknown[];
      data?: boolean;
      loc?: hbs.AST.SourceLocation;
    };
    if (record.type === "PathExpression") {
      // `@root.name` reads a variable from inside a block; other `@` data (`@index`) is not one.
      const name = record.data
        ? record.parts?.[0] === "root"
          ? record.parts[1]
          : undefined
        : record.parts?.[0];
      const loc = record.loc?.start ?? { line: 0, column: 0 };
      if (typeof name === "string") names.push({ name, line: loc.line, column: loc.column + 1 });
      return;
    }
    for (const [key, value] of Object.entries(record)) if (key !== "loc") visit(value);
  };
  visit(ast);
  return names;
}
