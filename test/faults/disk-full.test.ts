import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labInventory, omensPlay, results, sshRoot } from "../helpers/lab.js";

// Fault: the target's filesystem is full (a 64 KiB tmpfs mounted over the folder inside the
// host). The write fails naming host, task, path and "No space left on device"; the previous
// file is intact and no temp file is left behind.
const dir = "/srv/omens-faults/full";
const OLD = "setting=old\n";

describe("fault: the filesystem is full", () => {
  beforeAll(() => {
    sshRoot(
      "ca",
      `umount ${dir} 2>/dev/null; mkdir -p ${dir} && mount -t tmpfs -o size=64k omens-full ${dir}`,
    );
    sshRoot("ca", `printf '${OLD.replace("\n", "\\n")}' > ${dir}/app.conf`);
  });
  afterAll(() => sshRoot("ca", `umount ${dir}`));

  it("the write fails clearly, the old file is intact, no temp file is left", async () => {
    const run = await omensPlay(
      ["test/fixtures/faults/disk-full.ts", "-i", labInventory(), "--json"],
      { OMENS_FAULT_DIR: dir },
    );
    expect(run.code, run.stderr).toBe(2);
    const [result] = results(run, "ca");
    expect(result?.status).toBe("failed");
    expect(result?.error).toContain("No space left on device");
    expect(result?.error).toContain(`${dir}/app.conf`);
    expect(result?.error).toContain("host ca");
    expect(result?.error).toContain('task "write app.conf"');
    expect(sshRoot("ca", `cat ${dir}/app.conf`)).toBe(OLD);
    expect(sshRoot("ca", `ls -A ${dir}`).trim().split("\n")).toEqual(["app.conf"]);
  });
});
