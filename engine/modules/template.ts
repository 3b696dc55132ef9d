import type { Deferrable } from "../dsl/deferred.js";
import { readFileSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { isAbsolute, resolve } from "node:path";
import Handlebars from "handlebars";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { inputError, type OmensError, type Where } from "../errors.js";
import type { FileFact } from "../facts/reader.js";
import { isSecret } from "../secret.js";
import { ArgReader } from "./args.js";
import { ATTRIBUTE_KEYS, readAttributes, type Attributes } from "./attributes.js";
import { destinationFacts, planContent, readValidate } from "./content.js";
import type { ModuleDefinition } from "./types.js";

/** A constant header for generated files: it never varies between runs, users or machines. */
export const MANAGED_HEADER = "Managed by Omens; local edits are overwritten";

/**
 * Opt-in template helpers whose value depends on when, by whom or from where a run happens.
 * A file using one differs on every run, so it reports changed and fires its handlers each
 * time; `omens-play lint` flags every use (rule template-nondeterministic).
 */
export const RUN_VARYING_HELPERS: Readonly<Record<string, () => string>> = {
  /** The controller's clock, ISO 8601. */
  controllerTime: () => new Date().toISOString(),
  /** The user running omens-play. */
  controllerUser: () => userInfo().username,
  /** The machine running omens-play. */
  controllerHost: () => hostname(),
};

const handlebars = Handlebars.create();
for (const [name, helper] of Object.entries(RUN_VARYING_HELPERS))
  handlebars.registerHelper(name, helper);

/** Arguments of the `template` module. */
export interface TemplateArgs {
  /** A handlebars file, relative to the role's `templates/` folder (or the playbook's folder). */
  src: string;
  dest: string;
  /** Extra variables for this template only; they override host and role variables. */
  vars?: Record<string, unknown>;
  owner?: string;
  group?: string;
  mode?: string;
  /**
   * A command that checks the rendered file before it replaces `dest`, the file named by `%s`
   * (`"spire-agent validate -config %s"`). When it fails, `dest` is left as it was.
   */
  validate?: string;
}

interface Valid extends Attributes {
  src: string;
  dest: string;
  vars: Record<string, unknown>;
  validate?: string;
}

/**
 * Renders a handlebars template with the host's variables and writes it atomically.
 * An undefined variable is an error naming the template and line.
 *
 * @example
 * template({ src: "agent.conf.hbs", dest: "/etc/spire/agent/agent.conf", mode: "0640", notify: handlers.restart })
 */
export function template(args: Deferrable<TemplateArgs> & TaskOptions): Task {
  return makeTask("template", args, callerLocation());
}

export const templateModule: ModuleDefinition<
  Valid,
  { fact: FileFact; current: Buffer | undefined; desired: Buffer }
> = {
  name: "template",
  validate(raw, where) {
    const args = new ArgReader("template", raw, where, [
      "src",
      "dest",
      "vars",
      "validate",
      ...ATTRIBUTE_KEYS,
    ]);
    const dest = args.string("dest");
    if (!dest.startsWith("/"))
      args.fail("ARG_VALUE", `template: "dest" must be an absolute path, got "${dest}"`);
    const vars = args.value("vars") ?? {};
    if (typeof vars !== "object" || vars === null)
      args.fail("ARG_TYPE", `template: "vars" must be an object`);
    const validate = readValidate(args, "template");
    return {
      src: args.string("src"),
      dest,
      vars: vars as Record<string, unknown>,
      ...readAttributes(args, where),
      ...(validate === undefined ? {} : { validate }),
    };
  },
  // A template is part of the playbook, like its code: one that is missing or does not parse
  // stops the run before any host is contacted, not halfway through it.
  validateSources(args, baseDir, where) {
    const file = templateFile(args.src, baseDir, where);
    parseTemplate(readFileSync(file, "utf8"), file, where);
  },
  label: (args) => `template ${args.dest}`,
  async facts(args, reader, ctx) {
    const desired = Buffer.from(
      renderTemplateFile(args.src, ctx.baseDir, { ...ctx.vars, ...args.vars }, ctx.where),
    );
    return { ...(await destinationFacts(reader, args.dest, desired, ctx.diff)), desired };
  },
  plan(args, facts) {
    return planContent(args.dest, facts.desired, facts.fact, args, facts.current, args.validate);
  },
};

/** Finds a template beside a role or playbook: `templates/<src>` first, then `<src>`. */
export function findTemplate(src: string, baseDir: string): string[] {
  return isAbsolute(src) ? [src] : [resolve(baseDir, "templates", src), resolve(baseDir, src)];
}

/** Renders a template file strictly: undefined variables and syntax errors name file and line. */
export function renderTemplateFile(
  src: string,
  baseDir: string,
  vars: Record<string, unknown>,
  where: Where,
): string {
  const file = templateFile(src, baseDir, where);
  return renderTemplate(readFileSync(file, "utf8"), file, vars, where);
}

/** As `renderTemplateFile`, but gives every problem of the render instead of throwing. */
export function renderTemplateFileProblems(
  src: string,
  baseDir: string,
  vars: Record<string, unknown>,
  where: Where,
): { output: string } | { problems: OmensError[] } {
  const file = templateFile(src, baseDir, where);
  return renderTemplateProblems(readFileSync(file, "utf8"), file, vars, where);
}

function templateFile(src: string, baseDir: string, where: Where): string {
  const candidates = findTemplate(src, baseDir);
  const file = candidates.find((path) => readable(path));
  if (!file)
    throw inputError(
      "template",
      "TEMPLATE_MISSING",
      `template not found: ${candidates.join(" or ")}`,
      where,
    );
  return file;
}

/**
 * Parses template text without rendering it: syntax errors name file and line. Undefined
 * variables are only known when rendering, since a `when` may keep the task from running.
 */
export function parseTemplate(text: string, file: string, where: Where): void {
  try {
    handlebars.parse(text);
  } catch (error) {
    throw templateError(error as Error, file, where);
  }
}

/**
 * Renders template text; `file` names it in errors. The error is the first problem a render
 * meets, in its own words; when more names are undefined, it lists them after it.
 */
export function renderTemplate(
  text: string,
  file: string,
  vars: Record<string, unknown>,
  where: Where,
): string {
  const result = renderTemplateProblems(text, file, vars, where);
  if ("output" in result) return result.output;
  throw withOthers(result.problems);
}

/** The most undefined names one render collects; a template with more is broken anyway. */
const MAX_PROBLEMS = 50;

/**
 * Renders template text, or gives every problem it has: each undefined variable or helper,
 * in the order a render meets them, then at most one other error (a partial, a helper that
 * throws). Each undefined name found is rendered as nothing (a helper call as "") and the
 * render goes on, so the runtime itself finds the next one, in the branches it would take.
 */
export function renderTemplateProblems(
  text: string,
  file: string,
  vars: Record<string, unknown>,
  where: Where,
): { output: string } | { problems: OmensError[] } {
  const context = { managedHeader: MANAGED_HEADER, ...revealSecrets(vars) };
  const problems: OmensError[] = [];
  const blanked: Blank[] = [];
  for (;;) {
    try {
      const output = compiled(text, blanked)(context, { data: BLANK_DATA });
      return problems.length === 0 ? { output } : { problems };
    } catch (error) {
      const problem = renderError(error as Error, text, file, where, blanked);
      problems.push(problem);
      const blank = blankOf(problem);
      if (!blank || problems.length >= MAX_PROBLEMS) return { problems };
      blanked.push(blank);
    }
  }
}

/** The first problem's error, its message followed by the other undefined names and lines. */
function withOthers(problems: OmensError[]): OmensError {
  const [first, ...others] = problems as [OmensError, ...OmensError[]];
  if (others.length === 0) return first;
  const names = others.flatMap((p) => {
    const name = /^template (variable|helper) ("[^"]*") is not defined$/.exec(p.message);
    if (!name) return [];
    return [`${name[1] === "helper" ? "helper " : ""}${name[2]} (line ${p.where.line})`];
  });
  const last = others.at(-1) as OmensError;
  const then = last.code === "TEMPLATE_UNDEFINED" ? "" : `; then ${last.message}`;
  const also = names.length > 0 ? `; also not defined: ${names.join(", ")}` : "";
  return inputError("template", first.code, `${first.message}${also}${then}`, first.where);
}

/** A use of an undefined name, by where its path starts, to render as nothing next time. */
interface Blank {
  line: number;
  /** 0-based, as handlebars counts. */
  column: number;
  helper: boolean;
}

// Data the render always has: an undefined value and a helper that renders nothing, which a
// blanked use reads instead of its own name (data paths are `@name`).
const BLANK_DATA = { omensUndefined: undefined, omensNoHelper: () => "" };

function blankOf(problem: OmensError): Blank | undefined {
  if (problem.code !== "TEMPLATE_UNDEFINED") return undefined;
  const { line, column } = problem.where;
  if (line === undefined || column === undefined) return undefined;
  return { line, column: column - 1, helper: problem.message.startsWith("template helper") };
}

// Compiling is most of a render's cost, and the same template is rendered for every host.
const compiledTemplates = new Map<string, HandlebarsTemplateDelegate>();

function compiled(text: string, blanked: Blank[]): HandlebarsTemplateDelegate {
  if (blanked.length > 0) return compileTree(text, blanked);
  let render = compiledTemplates.get(text);
  if (!render) {
    render = compileTree(text, []);
    compiledTemplates.set(text, render);
  }
  return render;
}

/**
 * Compiles the template with each blanked use reading its stand-in. Handlebars' strict mode
 * checks `{{name}}` but not a helper's parameters, so `{{#if debugMode}}` on an undefined
 * `debugMode` would quietly be false; as Jinja's StrictUndefined in Ansible, a parameter's path
 * is marked strict too: `#if`, `#unless`, `#each`, `#with` and helper arguments need their
 * variable defined, like a plain use (a variable set to false, "" or undefined is defined).
 */
function compileTree(text: string, blanked: Blank[]): HandlebarsTemplateDelegate {
  const tree = handlebars.parseWithoutProcessing(text);
  walk(tree, (node) => {
    const n = node as { params?: unknown[]; hash?: { pairs?: { value: unknown }[] } };
    for (const value of [...(n.params ?? []), ...(n.hash?.pairs ?? []).map((p) => p.value)])
      if (isPath(value)) value.strict = true;
    if (isPath(node)) blank(node, blanked);
  });
  return handlebars.compile(tree, { strict: true, noEscape: true });
}

type PathNode = hbs.AST.PathExpression & { strict?: boolean };

function isPath(node: unknown): node is PathNode {
  return (node as { type?: string } | undefined)?.type === "PathExpression";
}

/** The blanked use that starts at a syntax tree position, if any. */
function blankedAt(blanked: Blank[], start: hbs.AST.Position): Blank | undefined {
  return blanked.find((b) => b.line === start.line && b.column === start.column);
}

/** Points a blanked use at the data that stands in for it. */
function blank(path: PathNode, blanked: Blank[]): void {
  const found = blankedAt(blanked, path.loc.start);
  if (!found) return;
  const name = found.helper ? "omensNoHelper" : "omensUndefined";
  Object.assign(path, { data: true, depth: 0, parts: [name], original: `@${name}` });
}

/**
 * What went wrong while rendering, in the template's terms. Handlebars' strict mode reports a
 * missing helper as a missing variable, and a path `a.b.c` by its last part only; the template's
 * syntax tree says which it was and gives the whole path. Other faults (a partial, a helper that
 * throws) are render errors, not syntax errors.
 */
function renderError(error: Error, text: string, file: string, where: Where, blanked: Blank[]) {
  const missingStep = missingPathStep(error, text, blanked);
  if (missingStep)
    return inputError(
      "template",
      "TEMPLATE_UNDEFINED",
      `template variable "${missingStep.name}" is not defined`,
      { ...where, file, line: missingStep.line, column: missingStep.column + 1 },
    );
  const undefinedVar = /^"(.+)" not defined in .* - (\d+):(\d+)$/.exec(error.message);
  if (undefinedVar) {
    const line = Number(undefinedVar[2]);
    const column = Number(undefinedVar[3]);
    const use = pathAt(text, line, column);
    const name = use?.path ?? (undefinedVar[1] as string);
    const message = use?.called
      ? `template helper "${name}" is not defined`
      : `template variable "${name}" is not defined`;
    return inputError("template", "TEMPLATE_UNDEFINED", message, {
      ...where,
      file,
      line,
      column: column + 1,
    });
  }
  if (parsed(text) === undefined) return templateError(error, file, where);
  const partial = /^The partial (.+) could not be found$/.exec(error.message);
  const at: Where = { ...where, file };
  delete at.column;
  delete at.line;
  if (partial) {
    const loc = partialAt(text, partial[1] as string);
    if (loc) Object.assign(at, loc);
    return inputError(
      "template",
      "TEMPLATE_RENDER",
      `template partial "${partial[1]}" does not exist: templates have no partials; inline the text or use a helper`,
      at,
    );
  }
  return inputError("template", "TEMPLATE_RENDER", `template error: ${error.message}`, at);
}

/**
 * Handlebars' strict mode does not check the steps before the last of a path: `{{site.tls.cert}}`
 * with no `site` fails in JavaScript ("Cannot read properties of undefined (reading 'tls')").
 * The first path not yet blanked with that step after its first names what is undefined.
 */
function missingPathStep(
  error: Error,
  text: string,
  blanked: Blank[],
): { name: string; line: number; column: number } | undefined {
  const step = /^Cannot read properties of (?:undefined|null) \(reading '(.+)'\)$/.exec(
    error.message,
  )?.[1];
  if (step === undefined || !(error instanceof TypeError)) return undefined;
  let found: { name: string; line: number; column: number } | undefined;
  walk(parsed(text), (node) => {
    if (found || !isPath(node) || node.data) return;
    const index = node.parts.indexOf(step);
    const { line, column } = node.loc.start;
    if (index < 1 || blankedAt(blanked, node.loc.start)) return;
    found = { name: node.parts.slice(0, index).join("."), line, column };
  });
  return found;
}

/** The path expression that starts at line:column (0-based column), and whether it is called. */
function pathAt(
  text: string,
  line: number,
  column: number,
): { path: string; called: boolean } | undefined {
  let found: { path: string; called: boolean } | undefined;
  const starts = (loc?: hbs.AST.SourceLocation) =>
    loc?.start.line === line && loc.start.column === column;
  walk(parsed(text), (node) => {
    const n = node as {
      type?: string;
      path?: { type?: string; original?: string; loc?: hbs.AST.SourceLocation };
      params?: unknown[];
      hash?: unknown;
      original?: string;
      loc?: hbs.AST.SourceLocation;
    };
    if (found) return;
    const call =
      n.type === "MustacheStatement" || n.type === "SubExpression" || n.type === "BlockStatement";
    if (call && n.path?.type === "PathExpression" && starts(n.path.loc)) {
      const called = (n.params?.length ?? 0) > 0 || n.hash !== undefined;
      found = { path: n.path.original ?? "", called };
    } else if (n.type === "PathExpression" && starts(n.loc)) {
      found = { path: n.original ?? "", called: false };
    }
  });
  return found;
}

function partialAt(text: string, name: string): { line: number; column: number } | undefined {
  let found: { line: number; column: number } | undefined;
  walk(parsed(text), (node) => {
    const n = node as { type?: string; name?: { original?: string }; loc?: hbs.AST.SourceLocation };
    if (!found && n.type === "PartialStatement" && n.name?.original === name && n.loc)
      found = { line: n.loc.start.line, column: n.loc.start.column + 1 };
  });
  return found;
}

function parsed(text: string): unknown {
  try {
    return handlebars.parse(text);
  } catch {
    return undefined;
  }
}

/** Calls `visit` on every node of a handlebars syntax tree, parents before children. */
function walk(node: unknown, visit: (node: object) => void): void {
  if (Array.isArray(node)) return node.forEach((child) => walk(child, visit));
  if (!node || typeof node !== "object") return;
  visit(node);
  for (const [key, value] of Object.entries(node)) if (key !== "loc") walk(value, visit);
}

function templateError(error: Error, file: string, where: Where) {
  const parse = /^Parse error on line (\d+):/.exec(error.message);
  const line = parse ? Number(parse[1]) : undefined;
  const detail = error.message.split("\n").slice(-1)[0] ?? error.message;
  // The task's own line and column do not point into the template: only the template's count.
  const at: Where = { ...where, file };
  delete at.column;
  if (line) at.line = line;
  else delete at.line;
  return inputError("template", "TEMPLATE_SYNTAX", `template syntax error: ${detail}`, at);
}

function readable(path: string): boolean {
  try {
    readFileSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Secrets render as their value inside files; output masks them separately. A value that
 * holds itself (`a.self = a`) is copied with the same cycle, not followed forever.
 */
function revealSecrets(
  value: Record<string, unknown>,
  copies = new Map<object, unknown>(),
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  copies.set(value, out);
  for (const [key, item] of Object.entries(value)) out[key] = revealValue(item, copies);
  return out;
}

function revealValue(value: unknown, copies: Map<object, unknown>): unknown {
  if (isSecret(value)) return value.reveal();
  if (value && typeof value === "object" && copies.has(value)) return copies.get(value);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    copies.set(value, out);
    value.forEach((item) => out.push(revealValue(item, copies)));
    return out;
  }
  if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return revealSecrets(value as Record<string, unknown>, copies);
  }
  return value;
}
