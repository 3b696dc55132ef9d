import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  largestTempFile,
  remoteSha256,
  startPlay,
  tempFiles,
  waitUntil,
} from "../helpers/faults.js";
import { hostPath, LAB_HOSTS, labInventory, results, sshRoot } from "../helpers/lab.js";

// Fault: Ctrl-C (SIGINT) while a large copy runs on every host. Once: the running copies
// finish, no new task starts, the recap says what was done, exit code 130. Twice: the CLI
// quits at once, and every cut write keeps the old file. No host is left with a partial file.
const dir = "/srv/omens-faults/sigint";
const big = randomBytes(64 * 1024 * 1024);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const OLD = sha(Buffer.from("old version\n"));
let src = "";

const start = () =>
  startPlay(["test/fixtures/faults/large-copy.ts", "-i", labInventory(), "--json"], {
    OMENS_FAULT_DIR: dir,
    OMENS_FAULT_SRC: src,
  });
const copying = () =>
  waitUntil(
    () => LAB_HOSTS.some((h) => largestTempFile(h, dir) > 2 * 1024 * 1024),
    60_000,
    "a copy",
  );

describe("fault: Ctrl-C during a run", () => {
  beforeAll(() => {
    src = join(mkdtempSync(join(tmpdir(), "omens-sigint-")), "big.bin");
    writeFileSync(src, big);
  });
  beforeEach(() => {
    for (const h of LAB_HOSTS)
      sshRoot(h, `rm -rf ${dir} && mkdir -p ${dir} && printf 'old version\\n' > ${dir}/big.bin`);
  });

  it("once: running copies finish, nothing new starts, the recap is printed, exit 130", async () => {
    const live = start();
    await copying();
    live.child.kill("SIGINT");
    const run = await live.done;
    expect(run.code).toBe(130);
    expect(run.stdout).toContain("interrupted: running tasks finish");
    expect(run.events.at(-1)?.kind).toBe("recap");
    for (const h of LAB_HOSTS) {
      expect(results(run, h).map((r) => [r.task, r.status])).toEqual([["large copy", "changed"]]);
      expect(run.recap[h]).toMatchObject({ changed: 1, failed: 0 });
      expect(remoteSha256(h, `${dir}/big.bin`)).toBe(sha(big));
      expect(existsSync(hostPath(h, `${dir}/after`))).toBe(false);
      expect(tempFiles(h, dir)).toEqual([]);
    }
  });

  it("twice: the CLI quits at once, and every cut write keeps the old file", async () => {
    const live = start();
    await copying();
    live.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 50));
    live.child.kill("SIGINT");
    const run = await live.done;
    expect(run.code).toBe(130);
    for (const h of LAB_HOSTS) {
      // The host's sshd sees the connection close; the write's stdin ends short and is dropped.
      await waitUntil(() => tempFiles(h, dir).length === 0, 30_000, `${h}'s cut write to end`);
      expect([OLD, sha(big)]).toContain(remoteSha256(h, `${dir}/big.bin`));
      expect(existsSync(hostPath(h, `${dir}/after`))).toBe(false);
    }
  });
});
