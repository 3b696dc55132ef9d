import type { EventSink } from "../events.js";
import { maskSecrets } from "../secret.js";
import type { Terminal } from "./plain.js";

/**
 * JSON Lines: one event per line. The last line is the recap:
 * `{"kind":"recap","hosts":{"auth":{"ok":1,"changed":0,...}},...}`.
 */
export function jsonRenderer(terminal: Terminal): EventSink {
  return (event) => terminal.out(maskSecrets(JSON.stringify(event)));
}
