type ConsoleMethod = "log" | "info" | "debug" | "dir" | "table";
const PRINTING: ConsoleMethod[] = ["log", "info", "debug", "dir", "table"];

/**
 * Runs `work` with what playbook code prints through `console.log` (and its siblings) sent to
 * stderr, so a stdout that carries JSON Lines, a JSON report or SARIF holds nothing else.
 * Calls nest; each restores what it found.
 */
export async function withStdoutReserved<T>(reserved: boolean, work: () => Promise<T>): Promise<T> {
  if (!reserved) return work();
  const saved = PRINTING.map((method) => [method, console[method]] as const);
  for (const method of PRINTING) console[method] = console.error.bind(console);
  try {
    return await work();
  } finally {
    for (const [method, original] of saved) console[method] = original as never;
  }
}
