import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { loadPlaybook, PLAYBOOK_FILE, type PlaybookImporter } from "../cli.js";
import { inputError, OmensError } from "../errors.js";
import { usePlaceholderSecrets } from "../secret.js";
import { placeKey, type Finding } from "./finding.js";
import { lintInventory } from "./inventory.js";
import { errorFinding, modelPlaybook, type LintModel } from "./model.js";
import { RULES } from "./rules/index.js";
import { applySkips, type Suppressed } from "./skip.js";
import { typecheckNative } from "./typecheck-native.js";
import { typecheckInThread } from "./typecheck-thread.js";

/** What to lint. */
export interface LintOptions {
  /** Playbook files, or folders whose `.ts` files are playbooks. */
  paths: string[];
  /** Inventory files every playbook is checked against. */
  inventories: string[];
  /** Run the TypeScript compiler over the playbooks (default true). */
  typecheck?: boolean;
  /** How playbooks are imported (default: from their sources, as `omens-play` runs them). */
  importPlaybook?: PlaybookImporter;
}

/** Everything one lint run found. */
export interface LintReport {
  /** Findings not silenced, merged across hosts, in file and line order. */
  findings: Finding[];
  suppressed: Suppressed[];
  playbooks: string[];
  inventories: string[];
  /** What the run could not do as usual, e.g. type-checking without the native compiler. */
  warnings: string[];
}

/**
 * Checks playbooks against inventories without contacting any host: types, inventory schema,
 * role variables per host, module arguments, templates rendered per host, and the rules.
 *
 * @example
 * const report = await lint({ paths: ["playbooks/"], inventories: ["inventory/lab.yaml"] });
 */
export async function lint(options: LintOptions): Promise<LintReport> {
  usePlaceholderSecrets();
  const discovered = options.paths.map((path) => ({ path, files: discover(path) }));
  const files = once(discovered.flatMap((d) => d.files));
  const model: LintModel = { inventories: [], playbooks: [], problems: [] };
  for (const file of options.inventories.map(inventoryFile)) {
    const { inventory, findings } = lintInventory(file);
    model.problems.push(...findings);
    if (inventory) model.inventories.push(inventory);
  }
  const warnings: string[] = [];
  const types =
    options.typecheck === false
      ? Promise.resolve([])
      : checkTypes(
          files.map((f) => f.file),
          warnings,
        );
  // A usage error below must not leave a failed type check unhandled; it is awaited after.
  types.catch(() => undefined);
  const importPlaybook = options.importPlaybook ?? importSource;
  const kinds = new Map<string, ModuleKind>();
  for (const { file, fromFolder } of files)
    kinds.set(file, await addPlaybook(model, { file, fromFolder, importPlaybook }));
  refuseHelperFolders(discovered, kinds);
  const found = [
    ...model.problems,
    ...RULES.flatMap((rule) => rule.check(model)),
    ...(await types),
  ];
  const { active, suppressed } = applySkips(found, model);
  return {
    findings: merge(active),
    suppressed: mergeSuppressed(suppressed),
    playbooks: model.playbooks.map((p) => p.file),
    // Every inventory checked, also one that could not be used for the playbooks.
    inventories: options.inventories.map((f) => resolve(f)),
    warnings,
  };
}

/** An inventory path as given to `-i`: a file that exists, not a folder, not empty. */
function inventoryFile(path: string): string {
  if (path.trim() === "")
    throw inputError(
      "usage",
      "LINT_INVENTORY",
      "-i/--inventory is given an empty value (or $OMENS_INVENTORY is empty): name a YAML file",
    );
  const file = resolve(path);
  if (!existsSync(file))
    throw inputError("usage", "LINT_INVENTORY", `inventory not found: ${file}`, { file });
  if (statSync(file).isDirectory())
    throw inputError(
      "usage",
      "LINT_INVENTORY",
      `-i ${path} is a folder, not an inventory: name its YAML file`,
      { file },
    );
  return file;
}

/**
 * The native compiler in a child process while this thread loads the playbooks; when it cannot
 * be used, the compiler API in a worker thread, which finds the same errors more slowly.
 */
async function checkTypes(files: string[], warnings: string[]): Promise<Finding[]> {
  const native = await typecheckNative(files);
  if (native.kind === "checked") return native.findings;
  warnings.push(`${native.why}; type-checking with the TypeScript compiler API instead (slower)`);
  return (await typecheckInThread(files)).findings;
}

interface PlaybookFile {
  file: string;
  fromFolder: boolean;
}

/** A file as given, or the `.ts`/`.mts` files directly inside a folder. */
// A path that holds no playbook is a usage error: a mistyped folder in CI must not pass green.
function discover(path: string): PlaybookFile[] {
  if (path.trim() === "")
    throw inputError(
      "usage",
      "LINT_PATH",
      "a PATH is given as an empty value: name a playbook file or folder",
    );
  const full = resolve(path);
  if (!existsSync(full)) throw inputError("usage", "LINT_PATH", `no such file or folder: ${path}`);
  if (!statSync(full).isDirectory()) {
    if (!PLAYBOOK_FILE.test(full))
      throw inputError(
        "usage",
        "LINT_PATH",
        `${path} is not a playbook: lint reads TypeScript or JavaScript modules (.ts, .mts, .js, .mjs)`,
      );
    return [{ file: full, fromFolder: false }];
  }
  const files = readdirSync(full)
    .filter((name) => /\.m?ts$/.test(name) && !name.endsWith(".d.ts"))
    .sort()
    .map((name) => ({ file: join(full, name), fromFolder: true }));
  if (files.length === 0)
    throw inputError("usage", "LINT_PATH", `no playbook (.ts or .mts file) in the folder ${path}`);
  return files;
}

/** Each file once, as first named: a file given alone and through its folder is one playbook. */
function once(files: PlaybookFile[]): PlaybookFile[] {
  const seen = new Set<string>();
  return files.filter((f) => !seen.has(f.file) && seen.add(f.file));
}

interface PlaybookToAdd extends PlaybookFile {
  importPlaybook: PlaybookImporter;
}

const importSource: PlaybookImporter = (file) => import(pathToFileURL(file).href);

/** What a loaded module turned out to be; a broken playbook is a finding, still a playbook. */
type ModuleKind = "playbook" | "helper";

/** In a folder, a module with no default export is a helper, not a broken playbook. */
async function addPlaybook(model: LintModel, toAdd: PlaybookToAdd): Promise<ModuleKind> {
  const { file, fromFolder, importPlaybook } = toAdd;
  try {
    const playbook = await loadPlaybook(file, importPlaybook);
    model.playbooks.push(modelPlaybook(file, playbook, model.inventories, model.problems));
  } catch (error) {
    if (fromFolder && (await isHelperModule(error, file, importPlaybook))) return "helper";
    const finding = errorFinding("playbook-load", error, file);
    const loading = error instanceof OmensError && error.code === "PLAYBOOK_LOAD";
    model.problems.push(
      loading
        ? { ...finding, message: `loading the playbook failed: ${finding.message}` }
        : finding,
    );
  }
  return "playbook";
}

/**
 * A folder whose modules are all helpers holds no playbook: a usage error, like an empty one,
 * so that linting a role's folder by mistake fails CI instead of checking nothing.
 */
function refuseHelperFolders(
  discovered: { path: string; files: PlaybookFile[] }[],
  kinds: Map<string, ModuleKind>,
) {
  for (const { path, files } of discovered) {
    if (!files.every((f) => f.fromFolder && kinds.get(f.file) === "helper")) continue;
    throw inputError(
      "usage",
      "LINT_PATH",
      `no playbook in the folder ${path}: its modules have no default export (helpers only)`,
    );
  }
}

async function isHelperModule(
  error: unknown,
  file: string,
  importPlaybook: PlaybookImporter,
): Promise<boolean> {
  if (!(error instanceof OmensError) || error.code !== "PLAYBOOK_EXPORT") return false;
  return (await importPlaybook(file)).default === undefined;
}

/** Silenced findings merged like active ones, each keeping the reason its skip gave. */
function mergeSuppressed(suppressed: Suppressed[]): Suppressed[] {
  const reasons = new Map(suppressed.map((s) => [mergeKey(s.finding), s.reason]));
  return merge(suppressed.map((s) => s.finding)).map((finding) => ({
    finding,
    reason: reasons.get(mergeKey(finding)) ?? "",
  }));
}

function mergeKey(finding: Finding): string {
  return `${finding.rule}|${placeKey(finding.where)}|${finding.level}|${finding.message}`;
}

/**
 * One finding per rule, place and message; the hosts it holds for are gathered.
 * Known limit: hosts are named as in their inventory, so with several inventories that share
 * host names a host list does not say which inventory it came from (the message's source does).
 */
function merge(findings: Finding[]): Finding[] {
  const merged = new Map<string, Finding>();
  for (const finding of findings) {
    const key = mergeKey(finding);
    const existing = merged.get(key);
    if (!existing)
      merged.set(key, { ...finding, ...(finding.hosts ? { hosts: [...finding.hosts] } : {}) });
    else
      for (const host of finding.hosts ?? [])
        if (!existing.hosts?.includes(host)) existing.hosts?.push(host);
  }
  return [...merged.values()].sort(
    (a, b) =>
      (a.where.file ?? "").localeCompare(b.where.file ?? "") ||
      (a.where.line ?? 0) - (b.where.line ?? 0) ||
      (a.where.column ?? 0) - (b.where.column ?? 0) ||
      a.rule.localeCompare(b.rule),
  );
}
