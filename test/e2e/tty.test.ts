import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { LAB_DIR, labInventory, ROOT } from "../helpers/lab.js";

// The live listr2 view, as a person sees it: omens-play in a real terminal (tmux), its screen
// read back with capture-pane.
const session = `omens-tty-${process.pid}`;
const tmux = (...args: string[]) => execFileSync("tmux", args, { encoding: "utf8" });

async function screenWhenDone(limitMs: number): Promise<string> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const screen = tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", session);
    if (/^EXIT=\d+$/m.test(screen) || Date.now() > deadline) return screen;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("on a terminal", () => {
  afterAll(() => {
    try {
      tmux("kill-session", "-t", session);
    } catch {
      // already gone
    }
  });

  it("draws the live host list, then the recap, and exits as a plain run would", async () => {
    const command = `cd ${ROOT} && LAB_DIR=${LAB_DIR} ./bin/omens-play.js test/fixtures/converge.ts -i ${labInventory()} --check --diff; echo EXIT=$?; sleep 60`;
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "60", command);
    const screen = await screenWhenDone(60_000);
    expect(screen).toMatch(/^EXIT=0$/m);
    expect(screen).toContain("PLAY all");
    expect(screen).toContain("RECAP (check mode: nothing changed)");
    for (const host of ["spire", "auth", "ca"])
      expect(screen).toMatch(new RegExp(`^\\s*${host}\\s+ok=\\d+ changed=\\d+ failed=0`, "m"));
    // listr2 redraws in place: no host's row is left behind as a stack of stale frames.
    expect(screen.split("\n").filter((l) => l.includes("PLAY all")).length).toBe(1);
  });
});
