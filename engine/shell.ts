/** Quotes one word for a POSIX shell. */
export function quote(word: string): string {
  if (word !== "" && /^[\w@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Quotes an argv into one POSIX shell command line. */
export function quoteArgv(argv: readonly string[]): string {
  return argv.map(quote).join(" ");
}
