import type { EventSink, OmensEvent } from "../events.js";
import { maskSecrets } from "../secret.js";
import type { Terminal } from "./plain.js";

/**
 * JSON Lines: one event per line. The last line is the recap:
 * `{"kind":"recap","hosts":{"auth":{"ok":1,"changed":0,...}},...}`. Events that come after the
 * recap (the retry-file notice, `-v` statistics) are printed before it, when the run closes
 * the renderer, so `tail -1` is always the recap.
 */
export function jsonRenderer(terminal: Terminal): EventSink & { close: () => Promise<void> } {
  let recap: OmensEvent | undefined;
  const print = (event: OmensEvent) => terminal.out(maskSecrets(JSON.stringify(event)));
  const sink = (event: OmensEvent) => {
    if (event.kind === "recap") recap = event;
    else print(event);
  };
  return Object.assign(sink, {
    close: () => {
      if (recap) print(recap);
      recap = undefined;
      return Promise.resolve();
    },
  });
}
