/**
 * Pure text edits behind lineinfile and blockinfile. Both take the old text and return the new
 * text; equal text means nothing to do. Applying an edit to its own result changes nothing.
 */

/** A position for new text: after/before the last line matching a pattern, or at an end. */
export type Anchor =
  | { kind: "eof" }
  | { kind: "bof" }
  | { kind: "after"; pattern: RegExp }
  | { kind: "before"; pattern: RegExp };

export type LineSpec =
  | { state: "present"; line: string; regexp?: RegExp; anchor: Anchor }
  | { state: "absent"; line?: string; regexp?: RegExp };

export interface BlockSpec {
  state: "present" | "absent";
  block: string;
  begin: string;
  end: string;
  anchor: Anchor;
}

interface Lines {
  lines: string[];
}

function split(text: string): Lines {
  if (text === "") return { lines: [] };
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return { lines };
}

/**
 * Joins lines with a final newline. A file that lacked one gains it when anything is
 * added, so new text never runs on from the old last line.
 */
function join(lines: string[]): string {
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}

function lastIndex(lines: string[], pattern: RegExp): number {
  for (let i = lines.length - 1; i >= 0; i -= 1) if (pattern.test(lines[i] as string)) return i;
  return -1;
}

/** Where new lines go; an anchor that matches nothing falls back to the end of the file. */
function insertionIndex(lines: string[], anchor: Anchor): number {
  switch (anchor.kind) {
    case "bof":
      return 0;
    case "eof":
      return lines.length;
    case "after": {
      const at = lastIndex(lines, anchor.pattern);
      return at < 0 ? lines.length : at + 1;
    }
    case "before": {
      const at = lastIndex(lines, anchor.pattern);
      return at < 0 ? lines.length : at;
    }
  }
}

/**
 * Ensures one line. With `regexp`, the last matching line is replaced in place and the
 * anchor is not used; only when nothing matches (and the exact line is absent) is the line
 * inserted at the anchor.
 */
export function editLine(text: string, spec: LineSpec): string {
  const { lines } = split(text);
  if (spec.state === "absent") {
    const kept = lines.filter((l) => !(spec.regexp ? spec.regexp.test(l) : l === spec.line));
    return kept.length === lines.length ? text : join(kept);
  }
  const matched = spec.regexp ? lastIndex(lines, spec.regexp) : -1;
  if (matched >= 0) {
    if (lines[matched] === spec.line) return text;
    // A line the regexp does not match is already there, put by an earlier run: replacing the
    // next match as well would change the file on every run and never settle.
    if (!spec.regexp?.test(spec.line) && lines.includes(spec.line)) return text;
    lines[matched] = spec.line;
    return join(lines);
  }
  if (lines.includes(spec.line)) return text;
  lines.splice(insertionIndex(lines, spec.anchor), 0, spec.line);
  return join(lines);
}

/** Ensures a marked block: replaced between its markers, or inserted at the anchor. */
export function editBlock(text: string, spec: BlockSpec): string {
  const { lines } = split(text);
  const { begin, end } = findBlock(lines, spec);
  const body = spec.block === "" ? [] : split(spec.block).lines;
  const wanted = [spec.begin, ...body, spec.end];
  if (spec.state === "absent" || body.length === 0) {
    if (begin < 0 || end < 0) return text;
    // Every copy of the block goes: removing one per run would never settle.
    for (let b = findBlock(lines, spec); b.begin >= 0; b = findBlock(lines, spec))
      lines.splice(b.begin, b.end - b.begin + 1);
    return join(lines);
  }
  if (begin >= 0 && end >= 0) {
    const current = lines.slice(begin, end + 1);
    if (current.length === wanted.length && current.every((l, i) => l === wanted[i])) return text;
    lines.splice(begin, end - begin + 1, ...wanted);
    return join(lines);
  }
  lines.splice(insertionIndex(lines, spec.anchor), 0, ...wanted);
  return join(lines);
}

/**
 * The first complete block: its end marker and the begin marker closest before it. A stray
 * begin marker (no end after it) is left alone, so a block inserted after it is found again.
 */
function findBlock(lines: string[], spec: BlockSpec): { begin: number; end: number } {
  let begin = -1;
  for (let i = 0; i < lines.length; i += 1) {
    if (lines[i] === spec.begin) begin = i;
    else if (lines[i] === spec.end && begin >= 0) return { begin, end: i };
  }
  return { begin: -1, end: -1 };
}
