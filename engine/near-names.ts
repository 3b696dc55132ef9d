import editDistance from "damerau-levenshtein";

/**
 * Same name but for case, or one edit apart (up to `longEdits`, 2 by default, for names of 6+
 * characters), where swapping two neighbouring letters is one edit (`prot` for `port`) and
 * case is none (`qPrt` for `qport` is one). What lint and runs call a misspelling.
 */
export function isNearMiss(a: string, b: string, longEdits = 2): boolean {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()];
  if (x === y) return true;
  const shorter = Math.min(x.length, y.length);
  return shorter >= 3 && editDistance(x, y).steps <= (shorter >= 6 ? longEdits : 1);
}

/** The names among `names` that are near misses of `name`, other than `name` itself. */
export function nearNames(name: string, names: Iterable<string>): string[] {
  return [...names].filter((n) => n !== name && isNearMiss(n, name));
}
