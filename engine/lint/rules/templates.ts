import { createRequire } from "node:module";
import type { ParseError as JsonScanError, ParseOptions } from "jsonc-parser";
import { bug, OmensError, type Where } from "../../errors.js";
import type { TaskContext, TaskOptions } from "../../dsl/task.js";
import {
  renderTemplateFileProblems,
  RUN_VARYING_HELPERS,
  templateModule,
} from "../../modules/template.js";
import { maskSecrets } from "../../secret.js";
import { withWhen, type LintTask } from "../expand.js";
import { placeKey, type Finding, type Rule } from "../finding.js";
import { allTasks, type LintModel } from "../model.js";
import { namesUsed, templateSource, type TemplateSource } from "../template-source.js";

export const templateRender: Rule = {
  id: "template-render",
  rationale:
    "A template that fails to render for a host (undefined variable, helper error) fails the run on that host.",
  level: "error",
  check: (model) => renders(model).flatMap((r) => r.errors ?? []),
};

export const templateParse: Rule = {
  id: "template-parse",
  rationale:
    "A rendered HCL or JSON config that does not parse makes its service refuse to start after the change.",
  level: "error",
  check: (model) =>
    renders(model).flatMap((r) => {
      const problem = r.output === undefined ? undefined : parseProblem(r.item, r.output);
      return problem ? [problem] : [];
    }),
};

export const templateNondeterministic: Rule = {
  id: "template-nondeterministic",
  rationale:
    "A template value that varies between runs (time, user, machine) reports changed and fires handlers every run.",
  level: "warning",
  check: (model) => {
    const found = new Map<string, Finding>();
    for (const { item } of templateTasks(model)) {
      const source = templateSource(item.task.args.src as string, item.baseDir);
      for (const use of source?.ast ? namesUsed(source.ast) : [])
        if (use.name in RUN_VARYING_HELPERS) {
          const where = { file: source?.file, line: use.line, column: use.column };
          found.set(`${placeKey(where)}|${placeKey(item.task.where)}`, {
            rule: "template-nondeterministic",
            message: `non-deterministic template value {{${use.name}}}: every run renders a different file, reports changed and notifies its handlers`,
            where,
            task: item.task,
          });
        }
    }
    return [...found.values()];
  },
};

interface Render {
  item: LintTask;
  output?: string;
  /** Every undefined name the render meets, each at its line, or its one other error. */
  errors?: Finding[];
}

const rendered = new WeakMap<LintModel, Render[]>();

/** Every template task rendered for its host, once per lint run. */
function renders(model: LintModel): Render[] {
  let list = rendered.get(model);
  if (!list) {
    list = [...templateTasks(model)].map(({ item }) =>
      mayRun(item) ? render(item) : source(item),
    );
    rendered.set(model, list);
  }
  return list;
}

function* templateTasks(model: LintModel) {
  for (const entry of allTasks(model))
    if (entry.item.task.module === "template" && entry.item.args !== undefined) yield entry;
}

/**
 * False when a `when` the task runs under (its blocks', its loop's, its own) is false for this
 * host from its variables alone, so the run would not render it there. A `when` that needs
 * facts or registered results cannot be decided: the template is rendered, as the run may.
 */
function mayRun(item: LintTask): boolean {
  return withWhen(item.conditions, item.task).every((when) => mayHold(when, item));
}

function mayHold(when: NonNullable<TaskOptions["when"]>, item: LintTask): boolean {
  try {
    return when(staticContext(item)) !== false;
  } catch {
    return true;
  }
}

/**
 * For a host whose `when` keeps the task from running: the template is not rendered, but a run
 * still refuses one that is missing or does not parse before it contacts any host.
 */
function source(item: LintTask): Render {
  try {
    templateModule.validateSources?.(item.args as never, item.baseDir, item.task.where);
    return { item };
  } catch (error) {
    if (!(error instanceof OmensError)) throw error;
    return { item, errors: [renderFinding(error, item)] };
  }
}

function render(item: LintTask): Render {
  const args = item.args as { src: string; vars: Record<string, unknown> };
  try {
    const vars = { ...item.vars, ...args.vars };
    const result = renderTemplateFileProblems(args.src, item.baseDir, vars, item.task.where);
    if ("output" in result) return { item, output: result.output };
    return { item, errors: result.problems.map((problem) => renderFinding(problem, item)) };
  } catch (error) {
    if (!(error instanceof OmensError)) throw error;
    return { item, errors: [renderFinding(error, item)] };
  }
}

function renderFinding(error: OmensError, item: LintTask): Finding {
  let where: Where = { file: error.where.file, line: error.where.line, column: error.where.column };
  if (
    (error.code === "TEMPLATE_SYNTAX" || error.code === "TEMPLATE_RENDER") &&
    where.line === undefined
  ) {
    const source = templateSource((item.args as { src: string }).src, item.baseDir);
    where = locateHelper(error.message, source) ?? where;
  }
  return {
    rule: "template-render",
    message: maskSecrets(error.message),
    where,
    task: item.task,
    hosts: [item.host],
  };
}

/** A helper error carries no line: point at the first use of the helper it names. */
function locateHelper(message: string, source: TemplateSource | undefined): Where | undefined {
  const name = /"([\w.-]+)"|#(\w+)/.exec(message)?.slice(1).find(Boolean);
  const use = source?.ast ? namesUsed(source.ast).find((n) => n.name === name) : undefined;
  return use ? { file: source?.file, line: use.line, column: use.column } : undefined;
}

/** The config language of a rendered file, from its destination's name. */
export function configFormat(dest: string): "hcl" | "json" | undefined {
  if (dest.endsWith(".json")) return "json";
  if (dest.endsWith(".hcl")) return "hcl";
  // SPIRE names its HCL files .conf; other .conf files (nginx, sshd, systemd drop-ins, sysctl)
  // each have a syntax of their own, which lint does not parse.
  if (dest.endsWith(".conf") && dest.startsWith("/etc/spire/")) return "hcl";
  return undefined;
}

function parseProblem(item: LintTask, output: string): Finding | undefined {
  const args = item.args as { src: string; dest: string };
  const format = configFormat(args.dest);
  if (!format) return undefined;
  const found = format === "json" ? jsonError(output) : hclError(output);
  if (!found) return undefined;
  const error = atEnd(found, output);
  const source = templateSource(args.src, item.baseDir);
  const text = output.split("\n")[error.line - 1]?.trim() ?? "";
  return {
    rule: "template-parse",
    message: maskSecrets(
      `rendered ${args.dest} is not valid ${format.toUpperCase()}: ${error.message} (output line ${error.line}: ${JSON.stringify(text.slice(0, 80))})`,
    ),
    where: source
      ? templatePlace(source, output, error)
      : { file: item.task.where.file, line: item.task.where.line },
    task: item.task,
    hosts: [item.host],
  };
}

/**
 * A parser that reaches the end of the text reports a place past its last line (an unclosed
 * brace in a 6-line file is at 7:2). The fault is that the file ends early: it is reported at
 * the last line that has text, here and in the template.
 */
function atEnd(error: ParseError, output: string): ParseError {
  const lines = output.split("\n");
  const last = lastTextLine(lines);
  if (error.line <= last && !/\bEOF\b/.test(error.message)) return error;
  const line = Math.min(error.line, last);
  return {
    message: `the file ends early: ${error.message}`,
    line,
    column: (lines[line - 1]?.length ?? 0) + 1,
    atEnd: true,
  };
}

function lastTextLine(lines: string[]): number {
  const index = lines.findLastIndex((text) => text.trim() !== "");
  return Math.max(index + 1, 1);
}

/**
 * The template line an output line came from: the template line whose literal text, with each
 * {{...}} read as "anything", matches the output line, the nearest one if several do. Only
 * when none does, and the template has no blocks (so each template line gives one output
 * line), is it the output line's own number; a `{{#each}}` can give as many lines as the
 * template has and still move every line after it. An end-of-file fault is at the template's
 * last line.
 * Known limit: an output line made only by substitutions in a template with blocks matches no
 * template line; the finding then points at the template file and quotes the output line.
 */
function templatePlace(source: TemplateSource, output: string, error: ParseError): Where {
  const lines = source.text.split("\n");
  if (error.atEnd) return { file: source.file, line: lastTextLine(lines) };
  const wanted = (output.split("\n")[error.line - 1] ?? "").trim();
  const matching = lines
    .map((text, index) => ({ line: index + 1, pattern: skeleton(text) }))
    .filter((c) => c.pattern?.test(wanted))
    .sort((a, b) => Math.abs(a.line - error.line) - Math.abs(b.line - error.line));
  const found = matching[0];
  const oneToOne = !hasBlocks(source) && lines.length === output.split("\n").length;
  if (oneToOne && (!found || found.line === error.line))
    return { file: source.file, line: error.line, column: error.column };
  return found ? { file: source.file, line: found.line } : { file: source.file };
}

function hasBlocks(source: TemplateSource): boolean {
  return source.ast === undefined || source.ast.body.some((node) => node.type === "BlockStatement");
}

/** A template line as a pattern: its literal text, each {{...}} standing for anything. */
function skeleton(line: string): RegExp | undefined {
  const parts = line.trim().split(/\{\{[^}]*\}\}/);
  if (parts.join("").trim() === "") return undefined;
  const escaped = parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${escaped.join(".*?")}$`);
}

/** What a predicate sees before any task ran: variables only; reading facts is undecidable. */
function staticContext(item: LintTask): TaskContext {
  return {
    host: item.host,
    vars: item.vars,
    registered: {},
    check: true,
    failure: { kind: "none" },
    result: () => undefined,
    get facts(): never {
      throw bug("lint reads no host facts");
    },
  };
}

interface ParseError {
  message: string;
  line: number;
  column: number;
  /** The text ended before the parser expected it to. */
  atEnd?: boolean;
}

function jsonError(text: string): ParseError | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (error) {
    const comma = trailingComma(text);
    if (comma) return comma;
    const message = (error as Error).message;
    const offset = Number(/at position (\d+)/.exec(message)?.[1] ?? firstErrorOffset(text));
    const before = text.slice(0, offset).split("\n");
    return {
      // Node quotes the text around the fault, newlines and all: one line reads better.
      message: message.replace(/ in JSON at position \d+.*$/, "").replace(/\s*\n\s*/g, " "),
      line: before.length,
      column: (before.at(-1)?.length ?? 0) + 1,
    };
  }
}

/**
 * Where JSON.parse gave up, for the messages that carry no position (node's "Unexpected token
 * 's', ..."): the first error of a scanner that keeps offsets. The end of the text if none.
 */
function firstErrorOffset(text: string): number {
  // Its CommonJS build loads parts of itself at run time, so it is not compiled in: see hcl.
  jsonc ??= createRequire(import.meta.url)("jsonc-parser") as JsoncParser;
  const errors: JsonScanError[] = [];
  jsonc.parse(text, errors, { disallowComments: true, allowTrailingComma: false });
  return errors[0]?.offset ?? text.length;
}

/**
 * A comma before a closing `]` or `}` (a loop that writes one after every item), at the comma.
 * The scanner stops at the bracket, and node quotes the text around it: both miss the comma.
 */
function trailingComma(text: string): ParseError | undefined {
  const offset = firstErrorOffset(text);
  const close = text[offset];
  const before = text.slice(0, offset).trimEnd();
  if ((close !== "]" && close !== "}") || !before.endsWith(",")) return undefined;
  const lines = before.split("\n");
  return {
    message: `a trailing comma before '${close}' (JSON allows no comma after the last item)`,
    line: lines.length,
    column: lines.at(-1)?.length ?? 1,
  };
}

type JsoncParser = {
  parse(text: string, errors: JsonScanError[], options: ParseOptions): unknown;
};
let jsonc: JsoncParser | undefined;

type HclParser = { parse(text: string): string };
let hcl: HclParser | undefined;

/** HCL v1 (the dialect SPIRE and OpenBao read); the parser returns an error as text. */
function hclError(text: string): ParseError | undefined {
  hcl ??= createRequire(import.meta.url)("js-hcl-parser") as HclParser;
  const result = hcl.parse(text);
  try {
    JSON.parse(result);
    return undefined;
  } catch {
    const at = /At (\d+):(\d+): (.*)$/.exec(result);
    const message = (at?.[3] ?? result).replace(/^unable to parse JSON: /, "");
    return { message, line: Number(at?.[1] ?? 1), column: Number(at?.[2] ?? 1) };
  }
}
