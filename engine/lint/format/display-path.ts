import { isAbsolute, relative } from "node:path";

// Its own module, with no imports from lint: role-vars.ts (imported by the rules) needs it, and
// describe.ts imports the rules, so keeping it there made an import cycle.

/** A path relative to the working folder when it lies below it. */
export function displayPath(file: string, root = process.cwd()): string {
  const rel = relative(root, file);
  return rel.startsWith("..") || isAbsolute(rel) ? file : rel;
}
