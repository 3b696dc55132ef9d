import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setLink } from "../helpers/conn.js";
import {
  largestTempFile,
  remoteSha256,
  startPlay,
  tempFiles,
  waitUntil,
} from "../helpers/faults.js";
import { hostPath, labInventory, omensPlay, results, sshRoot, LAB_HOSTS } from "../helpers/lab.js";

// Fault: a host's link is taken down while a large copy to it is on the wire. The host is
// reported unreachable within its connect timeout, gets no further task, the others finish,
// and the target is the old file or the new one, never a partial one.
const dir = "/srv/omens-faults/drop";
const OLD = Buffer.from("old version\n");
const big = randomBytes(96 * 1024 * 1024);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
let src = "";

describe("fault: the network drops during a large copy", () => {
  beforeAll(() => {
    src = join(mkdtempSync(join(tmpdir(), "omens-drop-")), "big.bin");
    writeFileSync(src, big);
    for (const h of LAB_HOSTS)
      sshRoot(h, `rm -rf ${dir} && mkdir -p ${dir} && printf 'old version\\n' > ${dir}/big.bin`);
  });
  afterAll(() => setLink("auth", "up"));

  it("the dropped host is unreachable, the others finish, its file is old or new, never partial", async () => {
    const live = startPlay(["test/fixtures/faults/large-copy.ts", "-i", labInventory(), "--json"], {
      OMENS_FAULT_DIR: dir,
      OMENS_FAULT_SRC: src,
    });
    await waitUntil(
      () => largestTempFile("auth", dir) > 4 * 1024 * 1024,
      60_000,
      "auth's copy to start",
    );
    setLink("auth", "down");
    const dropped = Date.now();
    const run = await live.done;
    const afterDrop = Date.now() - dropped;
    expect(run.code, run.stderr).toBe(4);
    expect(run.recap.auth).toMatchObject({ unreachable: 1, changed: 0 });
    const auth = results(run, "auth");
    expect(auth.map((r) => r.task)).toEqual(["large copy"]);
    expect(auth[0]?.error).toContain("auth");
    // connectTimeout is 5 s in the lab inventory: keepalives give up after about that long.
    expect(afterDrop).toBeLessThan(5_000 + 15_000);
    for (const h of ["spire", "ca"] as const) {
      expect(run.recap[h]).toMatchObject({ changed: 2, failed: 0, unreachable: 0 });
      expect(remoteSha256(h, `${dir}/big.bin`)).toBe(sha(big));
    }
    expect(existsSync(hostPath("auth", `${dir}/after`))).toBe(false);

    setLink("auth", "up");
    // The cut-off write is still alive on the host until its sshd notices the dead session;
    // whenever it ends, the target never shows a partial file.
    const target = () => remoteSha256("auth", `${dir}/big.bin`);
    expect(target()).toBe(sha(OLD));
    await waitUntil(
      () => tempFiles("auth", dir).length === 0,
      60_000,
      "the cut write's temp file to go",
    );
    // The write's stdin ended early: it noticed the missing bytes and kept the old file.
    expect(target()).toBe(sha(OLD));
  });

  it("a write whose shell is killed outright leaves a temp file; the next write there removes it", async () => {
    sshRoot("ca", `printf 'old version\\n' > ${dir}/big.bin && rm -f ${dir}/after`);
    const live = startPlay(
      ["test/fixtures/faults/large-copy.ts", "-i", labInventory(), "--json", "--limit", "ca"],
      { OMENS_FAULT_DIR: dir, OMENS_FAULT_SRC: src },
    );
    // The sender is paused the moment the copy is seen under way: on loopback the rest of the
    // file would otherwise arrive before the kill below does, and the write would finish.
    const copying = () => largestTempFile("ca", dir) > 4 * 1024 * 1024;
    await waitUntil(() => copying() && live.child.kill("SIGSTOP"), 60_000, "ca's copy");
    const [temp] = tempFiles("ca", dir);
    const pid = /^\.omens\.(\d+)\./.exec(temp ?? "")?.[1];
    expect(pid, temp).toBeDefined();
    sshRoot("ca", `kill -KILL ${pid}`); // no trap runs: the temp file stays behind
    live.child.kill("SIGCONT");
    const run = await live.done;
    expect(run.code).toBe(2);
    expect(results(run, "ca")[0]?.status).toBe("failed");
    expect(remoteSha256("ca", `${dir}/big.bin`)).toBe(sha(OLD));
    expect(tempFiles("ca", dir)).toEqual([temp]);

    const next = await omensPlay(
      ["test/fixtures/faults/small-write.ts", "-i", labInventory(), "--json", "--limit", "ca"],
      { OMENS_FAULT_DIR: dir },
    );
    expect(next.code, next.stderr).toBe(0);
    expect(tempFiles("ca", dir)).toEqual([]);
    expect(remoteSha256("ca", `${dir}/big.bin`)).toBe(sha(OLD));
  });
});
