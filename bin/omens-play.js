#!/usr/bin/env node
// Runs the engine compiled once into node_modules/.cache/omens (see engine-cache.js), which
// starts several times faster than compiling every file on load. With OMENS_TSX=1, or when the
// cache cannot be built, the engine runs straight from its TypeScript sources through tsx.
// Either way playbooks, roles and the engine run from .ts files with no build step by the user.
// `lint` loads playbooks the same way (its type check reads the sources itself).
const fromCache = process.env.OMENS_TSX !== "1";
const engine = (fromCache ? await compiled() : undefined) ?? (await fromSources());
process.exitCode = await engine.main(process.argv.slice(2), undefined, engine.importPlaybook);

async function compiled() {
  try {
    const { loadCompiledEngine } = await import("./engine-cache.js");
    return await loadCompiledEngine();
  } catch (error) {
    process.stderr.write(`warning: running the engine from its sources (${error.message})\n`);
    return undefined;
  }
}

async function fromSources() {
  const { register } = await import("tsx/esm/api");
  register();
  return await import("../engine/cli.ts");
}
