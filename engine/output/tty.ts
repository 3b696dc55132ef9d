import { Listr, type ListrTaskWrapper } from "listr2";
import type { EventSink, OmensEvent } from "../events.js";
import { OmensError } from "../errors.js";
import { maskSecrets } from "../secret.js";
import { plainRenderer, type Terminal } from "./plain.js";

/** A renderer that needs to finish drawing before the process exits. */
export interface ClosingSink extends EventSink {
  close(): Promise<void>;
}

interface HostRow {
  task?: ListrTaskWrapper<unknown, never, never>;
  title: string;
  finish: (failure?: string) => void;
  failure?: string;
}

const MARK = { ok: "ok", changed: "~", skipped: "-", failed: "x", unreachable: "!" } as const;

/**
 * For a terminal: a live listr2 list with one line per host of the running play (its current
 * task and last result). When the play ends, the changed and failed tasks are printed with
 * their diffs, as the plain renderer would, and the recap follows.
 */
export function ttyRenderer(terminal: Terminal, options: { showDiff: boolean }): ClosingSink {
  const plain = plainRenderer(terminal, options);
  let rows = new Map<string, HostRow>();
  let drawing: Promise<void> = Promise.resolve();
  let pending: OmensEvent[] = [];
  const endPlay = () => {
    rows.forEach((row) => row.finish(row.failure));
    rows = new Map();
    const details = pending;
    pending = [];
    drawing = drawing.then(() => details.forEach(plain));
  };
  const sink = (event: OmensEvent) => {
    switch (event.kind) {
      case "play-start": {
        endPlay();
        const run = preparePlay(event.hosts, rows);
        drawing = drawing.then(() => {
          plain(event);
          return run();
        });
        return;
      }
      case "task-start":
        return setTitle(
          rows.get(event.host),
          `${event.host}  ${event.handler ? "handler " : ""}${event.task} ...`,
        );
      case "task-result":
        return showResult(event, rows.get(event.host), pending);
      case "handlers-pending":
      case "task-retry":
      case "play-stopped":
      case "command":
      case "command-output":
        pending.push(event);
        return;
      case "recap":
        endPlay();
        drawing = drawing.then(() => plain(event));
        return;
      default:
        drawing = drawing.then(() => plain(event));
    }
  };
  return Object.assign(sink, {
    close: async () => {
      endPlay();
      await drawing;
    },
  });
}

/** Makes the play's rows now (events may arrive at once) and returns what draws them. */
function preparePlay(hosts: string[], rows: Map<string, HostRow>): () => Promise<void> {
  // Rows exist before listr starts its tasks, so no event or ending can be lost.
  const ends = hosts.map((host) => {
    const row: HostRow = { title: host, finish: () => undefined };
    const ended = new Promise<string | undefined>((resolve) => (row.finish = resolve));
    rows.set(host, row);
    return { host, row, ended };
  });
  const list = new Listr(
    ends.map(({ host, row, ended }) => ({
      title: host,
      task: async (_ctx: unknown, task: ListrTaskWrapper<unknown, never, never>) => {
        row.task = task;
        task.title = row.title;
        const failure = await ended;
        if (failure) throw new OmensError(failure, { code: "HOST_FAILED", family: "task" });
      },
    })),
    { concurrent: true, exitOnError: false, registerSignalListeners: false },
  );
  return () =>
    list.run().then(
      () => undefined,
      () => undefined,
    );
}

function setTitle(row: HostRow | undefined, title: string) {
  if (!row) return;
  row.title = maskSecrets(title);
  if (row.task) row.task.title = row.title;
}

function showResult(
  event: Extract<OmensEvent, { kind: "task-result" }>,
  row: HostRow | undefined,
  pending: OmensEvent[],
) {
  const status = event.check && event.status === "changed" ? "would change" : event.status;
  setTitle(row, `${event.host}  ${MARK[event.status]} ${event.task}: ${status}`);
  const fatal =
    event.status === "unreachable" ||
    (event.status === "failed" && !event.rescued && !event.ignored && event.item === undefined);
  if (row && fatal) row.failure = `${event.task}: ${status}`;
  if (event.status !== "ok" && event.status !== "skipped") pending.push(event);
}
