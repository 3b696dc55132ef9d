import { Worker } from "node:worker_threads";
import type { Finding } from "./finding.js";

/** Type errors, and whether a worker thread found them or (when none could start) this one. */
export interface TypecheckResult {
  findings: Finding[];
  thread: "worker" | "main";
}

/**
 * Type-checks in a worker thread, so the compiler (the slowest part of lint) runs while the
 * main thread loads playbooks and renders templates. Falls back to the same thread when a
 * worker cannot start.
 */
export function typecheckInThread(files: string[]): Promise<TypecheckResult> {
  if (files.length === 0) return Promise.resolve({ findings: [], thread: "main" });
  const tsx = import.meta.resolve("tsx/esm/api");
  const entry = new URL("./typecheck-worker.ts", import.meta.url).href;
  // A worker cannot start from a .ts file on Node 20, so it registers the loader first.
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: files });
    worker.once("message", (findings: Finding[]) => resolve({ findings, thread: "worker" }));
    worker.once("error", () => inThisThread(files).then(resolve, reject));
  });
}

async function inThisThread(files: string[]): Promise<TypecheckResult> {
  const { typecheck } = await import("./typecheck.js");
  return { findings: typecheck(files), thread: "main" };
}
