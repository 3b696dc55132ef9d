// Start-up without a TypeScript loader on the hot path: the engine's sources and the playbook's
// are compiled by esbuild once, kept in node_modules/.cache/omens, and reused while the sources
// are unchanged. Loading compiled modules natively avoids the loader hooks that tsx runs for
// every imported file (about 1 s of a 2 s start here). The playbook's source map keeps every
// task's file:line pointing at the .ts sources.
import { createHash } from "node:crypto";
import {
  accessSync,
  constants,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const ENGINE = join(ROOT, "engine");
const CACHE = join(ROOT, "node_modules", ".cache", "omens");
const SELF = fileURLToPath(import.meta.url);

/**
 * Imports the compiled engine (building it when its sources changed) and returns its CLI entry
 * with a playbook loader that compiles playbooks the same way and links them to this engine.
 */
export async function loadCompiledEngine() {
  assertWritable(CACHE);
  process.setSourceMapsEnabled(true);
  const dir = await engineBuild();
  const cli = await import(pathToFileURL(join(dir, "cli.mjs")).href);
  const errors = await import(pathToFileURL(join(dir, "errors.mjs")).href);
  const importPlaybook = async (file) => {
    const bundle = await playbookBuild(file, dir, errors);
    return import(pathToFileURL(bundle).href);
  };
  return { main: cli.main, importPlaybook };
}

/** The folder of the compiled engine for the current sources. */
async function engineBuild() {
  const sources = tsFiles(ENGINE);
  const key = fingerprint([SELF, ...sources].map(describeFile).join("\n"));
  const dir = join(CACHE, `engine-${key}`);
  if (exists(join(dir, "cli.mjs"))) return dir;
  const esbuild = await import("esbuild");
  const temp = `${dir}.${process.pid}.tmp`;
  await esbuild.build({
    ...COMMON,
    // Packages are compiled in too: one file loads faster than a hundred. Native addons stay
    // where npm built them (see nativeAddons).
    packages: undefined,
    external: ["cpu-features"],
    // Engine frames only need to be recognised as not the playbook's (they lie below
    // node_modules); OMENS_TSX=1 runs from the sources for stack traces into the engine.
    sourcemap: false,
    banner: { js: CJS_GLOBALS },
    entryPoints: sources,
    outbase: ENGINE,
    outdir: temp,
    splitting: true,
    plugins: [originalUrls(), nativeAddons()],
  });
  commitDir(temp, dir);
  pruneOldBuilds(dir);
  return dir;
}

/** The compiled playbook, whose imports of engine files point at the compiled engine. */
async function playbookBuild(file, engineDir, errors) {
  const base = join(CACHE, "playbooks", fingerprint(`${file}\n${engineDir}`));
  mkdirSync(dirname(base), { recursive: true });
  const record = readJson(`${base}.json`);
  if (record && record.inputs.every((line) => describeFile(line.split("\t")[0]) === line))
    return `${base}.mjs`;
  const esbuild = await import("esbuild");
  let result;
  try {
    result = await esbuild.build({
      ...COMMON,
      entryPoints: [file],
      outfile: `${base}.${process.pid}.mjs`,
      metafile: true,
      logLevel: "silent",
      plugins: [engineLink(engineDir), originalUrls()],
    });
  } catch (error) {
    throw compileError(error, file, errors);
  }
  const inputs = Object.keys(result.metafile.inputs)
    .map((input) => resolve(ROOT, input))
    .filter((input) => !input.includes(`${sep}node_modules${sep}`));
  renameSync(`${base}.${process.pid}.mjs`, `${base}.mjs`);
  writeFileSync(`${base}.json`, JSON.stringify({ inputs: inputs.map(describeFile) }));
  return `${base}.mjs`;
}

// What compiled-in CommonJS packages expect to find: require, __filename and __dirname.
const CJS_GLOBALS = [
  'import { createRequire as __omensRequire } from "node:module";',
  'import { fileURLToPath as __omensPath } from "node:url";',
  "const require = __omensRequire(import.meta.url);",
  "const __filename = __omensPath(import.meta.url);",
  'const __dirname = __filename.slice(0, __filename.lastIndexOf("/"));',
].join("\n");

const COMMON = {
  absWorkingDir: ROOT,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  sourcemap: "inline",
  sourcesContent: false,
  outExtension: { ".js": ".mjs" },
  logLevel: "silent",
};

/** Imports of engine files from a playbook or role resolve to the one compiled engine. */
function engineLink(engineDir) {
  return {
    name: "omens-engine-link",
    setup(build) {
      build.onResolve({ filter: /^(\.{1,2}\/|\/|file:)/ }, (args) => {
        const path = args.path.startsWith("file:") ? fileURLToPath(args.path) : args.path;
        const target = resolve(args.resolveDir, path).replace(/\.[cm]?[jt]s$/, "");
        if (!target.startsWith(ENGINE + sep)) return undefined;
        const compiled = join(engineDir, `${relative(ENGINE, target)}.mjs`);
        return { path: pathToFileURL(compiled).href, external: true };
      });
    },
  };
}

/** A package's `require` of a compiled `.node` file keeps pointing at that file, by absolute path. */
function nativeAddons() {
  return {
    name: "omens-native-addons",
    setup(build) {
      build.onResolve({ filter: /\.node$/ }, (args) => ({
        path: resolve(args.resolveDir, args.path),
        external: true,
      }));
    },
  };
}

/** `import.meta.url` (and dirname, filename) keep naming the source file, not the bundle. */
function originalUrls() {
  return {
    name: "omens-original-urls",
    setup(build) {
      build.onLoad({ filter: /\.[cm]?ts$/ }, (args) => {
        const text = readFileSync(args.path, "utf8");
        const contents = text
          .replaceAll("import.meta.url", JSON.stringify(pathToFileURL(args.path).href))
          .replaceAll("import.meta.dirname", JSON.stringify(dirname(args.path)))
          .replaceAll("import.meta.filename", JSON.stringify(args.path));
        return { contents, loader: "ts" };
      });
    },
  };
}

/** A compile error as the engine's input error, naming the file, line and column. */
function compileError(error, file, errors) {
  const first = error?.errors?.[0];
  if (!first) return error;
  const where = first.location
    ? {
        file: resolve(ROOT, first.location.file),
        line: first.location.line,
        column: first.location.column + 1,
      }
    : { file };
  return errors.inputError("playbook", "PLAYBOOK_LOAD", `cannot compile: ${first.text}`, where);
}

/**
 * Playbooks are compiled on every changed load, so a cache this user cannot write (another
 * user's checkout) means running from the sources instead; the caller falls back to tsx.
 */
function assertWritable(dir) {
  let existing = dir;
  while (!exists(existing)) existing = dirname(existing);
  try {
    accessSync(existing, constants.W_OK);
  } catch {
    // Before the engine loads there is no OmensError; bin/omens-play.js prints this as a warning.
    // eslint-disable-next-line no-restricted-syntax
    throw new Error(`${existing} is not writable by this user`);
  }
}

function tsFiles(dir) {
  return readdirSync(dir, { recursive: true })
    .filter((name) => /\.ts$/.test(name) && !name.endsWith(".d.ts"))
    .map((name) => join(dir, name))
    .sort();
}

function describeFile(path) {
  try {
    const info = statSync(path);
    return `${path}\t${info.size}\t${info.mtimeMs}`;
  } catch {
    return `${path}\tmissing`;
  }
}

function fingerprint(text) {
  return createHash("sha256").update(process.version).update(text).digest("hex").slice(0, 20);
}

function exists(path) {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
}

/** Another run may have built the same folder meanwhile: either copy is good. */
function commitDir(temp, dir) {
  mkdirSync(dirname(dir), { recursive: true });
  try {
    renameSync(temp, dir);
  } catch {
    rmSync(temp, { recursive: true, force: true });
  }
}

/** Engine builds of older sources, left a while for runs that may still be loading them. */
function pruneOldBuilds(current) {
  const hourAgo = Date.now() - 3600_000;
  for (const name of readdirSync(CACHE)) {
    const path = join(CACHE, name);
    if (!name.startsWith("engine-") || path === current) continue;
    if (statSync(path).mtimeMs < hourAgo) rmSync(path, { recursive: true, force: true });
  }
}
