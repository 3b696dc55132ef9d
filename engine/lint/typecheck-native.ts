import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { Finding } from "./finding.js";

const ENGINE_DIR = dirname(dirname(fileURLToPath(import.meta.url))) + sep;

/** Why the native compiler could not be used. */
export interface Unusable {
  kind: "unusable";
  why: string;
}

/** What the native compiler found, or why it could not be used. */
export type NativeResult = { kind: "checked"; findings: Finding[] } | Unusable;

/**
 * Type-checks with the native TypeScript compiler (TypeScript 7's `tsc`, a Go binary shipped
 * per platform on npm), several times faster than the compiler API of TypeScript 6. It checks
 * the same program as `typecheck`: the given files with the options of the nearest
 * tsconfig.json, findings reported only for the project's own files. It is `unusable` when
 * there is no binary for this platform, it does not start or crashes, or it refuses the
 * compiler options (TypeScript 7 dropped some that 6 accepts); the caller then uses the API.
 *
 * @example
 * const result = await typecheckNative(["/repo/playbooks/site.ts"]);
 */
export async function typecheckNative(
  files: string[],
  exe: string | undefined = nativeCompiler(),
): Promise<NativeResult> {
  if (files.length === 0) return { kind: "checked", findings: [] };
  if (!exe)
    return unusable(`no native TypeScript compiler for ${process.platform}-${process.arch}`);
  const configFile = nearestConfig(dirname(resolve(files[0] as string)));
  if (!configFile) return unusable(`no tsconfig.json above ${dirname(files[0] as string)}`);
  const configDirUser = configChain(configFile).find((f) => readText(f).includes("${configDir}"));
  if (configDirUser) return unusable(`${configDirUser} uses \${configDir}`);
  const scratch = scratchDir(dirname(configFile));
  if (!scratch) return unusable(`no node_modules folder above ${dirname(configFile)}`);
  const check = (some: string[]) => checkOnce(exe, scratch, configFile, some);
  const first = await check(files);
  if (first.kind !== "checked") return first;
  // tsc leaves out every type error of a program that has a syntax error: the files without
  // one are checked again on their own, so one broken playbook does not hide the others'.
  const broken = new Set(first.findings.filter(isSyntaxFinding).map((f) => f.where.file));
  const rest = files.filter((f) => !broken.has(resolve(f)));
  if (broken.size === 0 || rest.length === 0) return first;
  const second = await check(rest);
  if (second.kind !== "checked") return first;
  const seen = new Set(first.findings.map(findingKey));
  return {
    kind: "checked",
    findings: [...first.findings, ...second.findings.filter((f) => !seen.has(findingKey(f)))],
  };
}

async function checkOnce(
  exe: string,
  scratch: string,
  configFile: string,
  files: string[],
): Promise<NativeResult> {
  const project = writeProject(scratch, configFile, files);
  try {
    const run = await runCompiler(exe, project, dirname(configFile));
    return run.kind === "ran" ? toResult(run, dirname(configFile)) : run;
  } finally {
    rmSync(project, { force: true });
  }
}

/** TS1xxx: the parser's errors (and a few grammar checks), after which tsc checks no types. */
const isSyntaxFinding = (f: Finding) => /^TS1\d{3}:/.test(f.message);
const findingKey = (f: Finding) =>
  `${f.where.file ?? ""}:${f.where.line ?? ""}:${f.where.column ?? ""}:${f.message}`;

function unusable(why: string): Unusable {
  return { kind: "unusable", why };
}

/** The binary of the platform package npm installed as an optional dependency, if any. */
export function nativeCompiler(): string | undefined {
  const name = `@typescript/typescript-${process.platform}-${process.arch}`;
  let manifest: string;
  try {
    manifest = createRequire(import.meta.url).resolve(`${name}/package.json`);
  } catch {
    return undefined;
  }
  const exe = join(dirname(manifest), "lib", process.platform === "win32" ? "tsc.exe" : "tsc");
  return existsSync(exe) ? exe : undefined;
}

/** The tsconfig.json the compiler API would pick: the first one in this folder or above it. */
function nearestConfig(from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "tsconfig.json");
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The tsconfig.json and the files it extends, as far as they can be found. `${configDir}` in
 * any of them names the folder of the project file that is checked, which here is not the
 * tsconfig.json's own.
 */
function configChain(configFile: string, seen = new Set<string>()): string[] {
  if (seen.has(configFile) || !existsSync(configFile)) return [];
  seen.add(configFile);
  const extended = /"extends"\s*:\s*("[^"]*"|\[[^\]]*\])/.exec(readText(configFile))?.[1];
  const names = extended ? [...extended.matchAll(/"([^"]+)"/g)].map((m) => m[1] as string) : [];
  const bases = names.map((name) => resolveConfig(name, dirname(configFile)));
  return [configFile, ...bases.flatMap((base) => (base ? configChain(base, seen) : []))];
}

function resolveConfig(name: string, from: string): string | undefined {
  if (/^\.{0,2}\//.test(name)) return resolve(from, /\.json$/.test(name) ? name : `${name}.json`);
  const require = createRequire(join(from, "tsconfig.json"));
  for (const candidate of [name, `${name}.json`, `${name}/tsconfig.json`]) {
    try {
      return require.resolve(candidate);
    } catch {
      // the next spelling
    }
  }
  return undefined;
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/**
 * A folder for the generated project file below the nearest node_modules: type libraries
 * (`types`, `@types`) are looked up from a project file's folder upwards, and from there the
 * lookup meets the same node_modules folders as from the tsconfig.json's own folder.
 */
function scratchDir(configDir: string): string | undefined {
  for (let dir = configDir; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "node_modules"))) {
      const scratch = join(dir, "node_modules", ".cache", "omens-lint");
      mkdirSync(scratch, { recursive: true });
      return scratch;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * A project file that extends the tsconfig.json with exactly the files to check, so the
 * compiler builds the same program as `typecheck` does. Paths in the extended file stay
 * relative to that file. It neither emits nor writes build info.
 */
function writeProject(scratch: string, configFile: string, files: string[]): string {
  const project = join(scratch, `tsconfig.${process.pid}.${Date.now()}.json`);
  const compilerOptions = {
    noEmit: true,
    skipLibCheck: true,
    incremental: false,
    composite: false,
  };
  const body = {
    extends: configFile,
    compilerOptions,
    files: files.map((f) => resolve(f)),
    include: [],
  };
  writeFileSync(project, JSON.stringify(body, null, 2));
  return project;
}

// Far above the second or so it needs here: a compiler that hangs must not hang lint.
const TIMEOUT_MS = 300_000;
const MAX_OUTPUT = 64 * 1024 * 1024;

type CompilerRun = { kind: "ran"; stdout: string; foundErrors: boolean } | Unusable;

const STOPPED = `the native TypeScript compiler was stopped (over ${TIMEOUT_MS / 1000} s or 64 MiB)`;

/** Exit 0 means no errors, 1 and 2 errors found; anything else means the compiler failed. */
function runCompiler(exe: string, project: string, cwd: string): Promise<CompilerRun> {
  const args = ["--project", project, "--noEmit", "--pretty", "false"];
  const options = { cwd, maxBuffer: MAX_OUTPUT, timeout: TIMEOUT_MS };
  return new Promise((done) => {
    execFile(exe, args, options, (error, stdout, stderr) => {
      if (error?.killed) return done(unusable(STOPPED));
      const code = error ? (error as { code?: unknown }).code : 0;
      if (code === 0 || code === 1 || code === 2)
        return done({ kind: "ran", stdout, foundErrors: code !== 0 });
      const tail = stderr.trim().split("\n").slice(-3).join(" ");
      const how = typeof code === "number" ? `exited ${code}` : (error?.message ?? "failed");
      done(unusable(`the native TypeScript compiler ${how}${tail ? `: ${tail}` : ""}`));
    });
  });
}

interface Diagnostic {
  file?: string;
  line?: number;
  column?: number;
  code: number;
  text: string;
}

// `file(line,col): error TS2322: message`, or `error TS5023: message` for no file; the lines
// after it that start with spaces continue its message.
const HEAD = /^(?:(.+?)\((\d+),(\d+)\): )?(?:error|warning|message|suggestion) TS(\d+): (.*)$/;

function toResult(run: { stdout: string; foundErrors: boolean }, cwd: string): NativeResult {
  const diagnostics = parseDiagnostics(run.stdout, cwd);
  if (run.foundErrors && diagnostics.length === 0)
    return unusable(`the native TypeScript compiler failed with no error lint could read`);
  const refused = diagnostics.find(isOptionsDiagnostic);
  if (refused) {
    const what = `TS${refused.code}: ${refused.text.split("\n")[0]}`;
    return unusable(`the native TypeScript compiler refused the options (${what})`);
  }
  return { kind: "checked", findings: diagnostics.filter(isOwn).map(toFinding) };
}

function parseDiagnostics(stdout: string, cwd: string): Diagnostic[] {
  const diagnostics: Diagnostic[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const head = HEAD.exec(line);
    const last = diagnostics.at(-1);
    if (head) diagnostics.push(toDiagnostic(head, cwd));
    else if (last && /^\s+\S/.test(line)) last.text += `\n${line}`;
  }
  return diagnostics;
}

function toDiagnostic(head: RegExpExecArray, cwd: string): Diagnostic {
  const [, file, line, column, code, text] = head;
  const diagnostic: Diagnostic = { code: Number(code), text: text ?? "" };
  if (file === undefined) return diagnostic;
  return { ...diagnostic, file: resolve(cwd, file), line: Number(line), column: Number(column) };
}

/**
 * Errors about the options, the tsconfig.json or the program as a whole rather than a source
 * line: TypeScript 7 dropped options that 6 accepts, and reads tsconfig.json more strictly, so
 * the compiler API decides those.
 */
function isOptionsDiagnostic(diagnostic: Diagnostic): boolean {
  const { file, code } = diagnostic;
  return file === undefined || file.endsWith(".json") || (code >= 5000 && code < 6000);
}

/** Findings in the engine, in packages and in declaration files are not the project's. */
function isOwn(diagnostic: Diagnostic): boolean {
  const file = diagnostic.file;
  if (file === undefined) return true;
  if (file.includes(`${sep}node_modules${sep}`) || file.startsWith(ENGINE_DIR)) return false;
  return !/\.d\.[cm]?ts$/.test(file) && !/\.d\.[^.]+\.ts$/.test(file);
}

// The compiler API's findings indent a message's nested lines by two more spaces.
function toFinding(diagnostic: Diagnostic): Finding {
  const message = `TS${diagnostic.code}: ${diagnostic.text.replaceAll("\n", "\n  ")}`;
  if (diagnostic.file === undefined) return { rule: "type-error", message, where: {} };
  const { file, line, column } = diagnostic;
  return { rule: "type-error", message, where: { file, line, column } };
}
