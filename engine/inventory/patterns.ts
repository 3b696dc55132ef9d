import { readFileSync } from "node:fs";
import picomatch from "picomatch";
import { inputError } from "../errors.js";
import type { Inventory } from "./load.js";

/** The hosts a pattern selects, in inventory order, and the terms that matched nothing. */
export interface PatternMatch {
  hosts: string[];
  unmatched: string[];
}

/**
 * Resolves an Ansible-style host pattern: names, groups and globs separated by `,` or `:`;
 * `!term` excludes, `&term` intersects, `@file` reads one host per line from a file.
 * Unions are taken first, then intersections, then exclusions, whatever their order. A pattern
 * of only exclusions and intersections starts from every host, as Ansible reads `!auth` as
 * `all:!auth`.
 */
export function matchHosts(inventory: Inventory, pattern: string): PatternMatch {
  const written = splitTerms(pattern);
  const bareSign = written.find((t) => t === "!" || t === "&");
  if (bareSign)
    throw inputError(
      "usage",
      "PATTERN_EMPTY_TERM",
      `host pattern '${pattern}': '${bareSign}' names no host or group (an unset shell variable?); '!' alone would select every host`,
    );
  const terms = written.flatMap(expandFileTerm);
  const unmatched: string[] = [];
  // Decided on the terms as written: `@file` is a union even when the file lists no host.
  const fromAll = written.length > 0 && written.every((t) => /^[!&]/.test(t));
  const union = new Set<string>(fromAll ? inventory.hosts.keys() : []);
  const intersections: Set<string>[] = [];
  const exclusions = new Set<string>();
  for (const term of terms) {
    const bare = term.replace(/^[!&]/, "");
    const found = resolveTerm(inventory, bare);
    if (found.length === 0) unmatched.push(bare);
    if (term.startsWith("!")) found.forEach((h) => exclusions.add(h));
    else if (term.startsWith("&")) intersections.push(new Set(found));
    else found.forEach((h) => union.add(h));
  }
  const hosts = [...inventory.hosts.keys()].filter(
    (h) => union.has(h) && intersections.every((set) => set.has(h)) && !exclusions.has(h),
  );
  return { hosts, unmatched };
}

function splitTerms(pattern: string): string[] {
  // A colon separates terms unless it is part of an IPv6 address; a comma always does.
  return pattern
    .split(/,|:(?![0-9a-f]*:)/i)
    .map((t) => t.trim())
    .filter((t) => t !== "");
}

function expandFileTerm(term: string): string[] {
  const prefix = term.match(/^[!&]/)?.[0] ?? "";
  const bare = term.slice(prefix.length);
  if (!bare.startsWith("@")) return [term];
  const file = bare.slice(1);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw inputError(
      "usage",
      "LIMIT_FILE_UNREADABLE",
      `cannot read host list ${file}: ${(error as Error).message}`,
      { file },
    );
  }
  return text
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line !== "")
    .map((line) => prefix + line);
}

function resolveTerm(inventory: Inventory, term: string): string[] {
  if (inventory.hosts.has(term)) return [term];
  const group = inventory.groups.get(term);
  if (group) return group;
  if (!/[*?[]/.test(term)) return [];
  const isMatch = picomatch(term, { dot: true });
  const hosts = [...inventory.hosts.keys()].filter((h) => isMatch(h));
  const fromGroups = [...inventory.groups.entries()]
    .filter(([g]) => isMatch(g))
    .flatMap(([, m]) => m);
  return [...new Set([...hosts, ...fromGroups])];
}
