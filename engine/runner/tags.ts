import type { TagSelector } from "./compile.js";

/** What `--tags` and `--skip-tags` asked for. */
export interface TagFilter {
  /** `--tags`; absent means every task (`all`). */
  only?: readonly string[];
  skip?: readonly string[];
}

/**
 * Ansible's tag rules. A task tagged `always` runs unless `--skip-tags` names one of its tags
 * (or `always`); a task tagged `never` runs only when `--tags` names one of its tags (or
 * `never`). `all`, `tagged` and `untagged` are understood on both sides.
 *
 * @example
 * tagSelector({ only: ["config"] })(["config", "never"]) // true: named explicitly
 */
export function tagSelector(filter: TagFilter): TagSelector {
  const only = new Set(filter.only ?? ["all"]);
  const skip = new Set(filter.skip ?? []);
  return (tags) => isWanted(new Set(tags), only) && !isSkipped(new Set(tags), skip);
}

function isWanted(tags: Set<string>, only: Set<string>): boolean {
  if (tags.has("always")) return true;
  if ([...tags].some((t) => only.has(t))) return true;
  if (tags.has("never")) return false;
  if (only.has("all")) return true;
  if (only.has("tagged") && tags.size > 0) return true;
  return only.has("untagged") && tags.size === 0;
}

function isSkipped(tags: Set<string>, skip: Set<string>): boolean {
  if (skip.has("all")) return !tags.has("always") || skip.has("always");
  if ([...tags].some((t) => skip.has(t))) return true;
  if (skip.has("tagged") && tags.size > 0) return true;
  return skip.has("untagged") && tags.size === 0;
}

/** The tags of a comma-separated flag value, e.g. `--tags config,restart`. */
export function parseTagList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}
