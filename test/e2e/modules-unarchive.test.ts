import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sshRoot } from "../helpers/lab.js";
import { playTasks } from "./modules-helpers.js";

const ROOT = "/opt/omens-unarchive";
const SRC = `${ROOT}/rel-1.tar.gz`;
const DEST = `${ROOT}/1`;
const unpack = (extra: Record<string, unknown> = {}) => ({
  module: "unarchive",
  args: { src: SRC, dest: DEST, stripComponents: 1, ...extra },
});
const tree = () => sshRoot("auth", `cd ${DEST} && find . -printf '%p %y %m %u %s\\n' | sort`);

describe("unarchive on a lab host", () => {
  beforeAll(() => {
    sshRoot(
      "auth",
      [
        `rm -rf ${ROOT} && mkdir -p ${ROOT}/build/rel-1/bin ${DEST}`,
        `cd ${ROOT}/build && printf '#!/bin/sh\\necho v1\\n' > rel-1/bin/tool && chmod 755 rel-1/bin/tool`,
        `echo 'read me' > rel-1/README && ln -s bin/tool rel-1/current`,
        `tar -czf ${SRC} rel-1 && rm -rf ${ROOT}/build`,
      ].join(" && "),
    );
  });
  afterAll(() => sshRoot("auth", `rm -rf ${ROOT}`));

  it("check mode predicts the extraction and writes nothing", async () => {
    const run = await playTasks([unpack()], ["--check"]);
    expect(run.code, run.stdout).toBe(0);
    expect(run.results[0]?.status).toBe("changed");
    expect(run.results[0]?.reason).toMatch(/^4 of 4 entries differ: .*bin\/tool \(missing\)/);
    expect(sshRoot("auth", `ls -A ${DEST}`)).toBe("");
  });

  it("extracts without creates, then finds dest equal to the archive on the second run", async () => {
    const first = await playTasks([unpack()]);
    expect(first.results[0]?.status, first.stdout).toBe("changed");
    expect(tree()).toBe(
      [
        ". d 755 root 4096",
        "./README f 644 root 8",
        "./bin d 755 root 4096",
        "./bin/tool f 755 root 18",
        "./current l 777 root 8",
        "",
      ].join("\n"),
    );
    const second = await playTasks([unpack()]);
    expect(second.results[0]).toMatchObject({
      status: "ok",
      reason: `${DEST} matches ${SRC} (4 entries)`,
    });
  });

  it("restores an edited file and a changed mode, naming both", async () => {
    sshRoot("auth", `echo edited > ${DEST}/README && chmod 700 ${DEST}/bin/tool`);
    const run = await playTasks([unpack()], ["--diff"]);
    expect(run.results[0]?.status).toBe("changed");
    expect(run.results[0]?.reason).toBe(
      "2 of 4 entries differ: README (size differs), bin/tool (mode differs)",
    );
    expect(sshRoot("auth", `cat ${DEST}/README; stat -c %a ${DEST}/bin/tool`)).toBe(
      "read me\n755\n",
    );
  });

  it("gives every extracted entry the owner asked for, and is ok afterwards", async () => {
    const task = unpack({ owner: "deploy", group: "deploy" });
    const first = await playTasks([task]);
    expect(first.results[0]?.status, first.stdout).toBe("changed");
    expect(first.results[0]?.reason).toContain("(owner root)");
    expect(sshRoot("auth", `stat -c %U:%G ${DEST}/README ${DEST}/bin/tool ${DEST}/current`)).toBe(
      "deploy:deploy\n".repeat(3),
    );
    const second = await playTasks([task]);
    expect(second.results[0]?.status).toBe("ok");
  });

  it("with creates, skips the comparison once the path exists", async () => {
    sshRoot("auth", `echo edited > ${DEST}/README`);
    const run = await playTasks([unpack({ creates: `${DEST}/bin/tool` })]);
    expect(run.results[0]).toMatchObject({ status: "ok", reason: `${DEST}/bin/tool exists` });
    expect(sshRoot("auth", `cat ${DEST}/README`)).toBe("edited\n");
  });

  it("fails on a missing archive, naming it, the host, the task and file:line", async () => {
    const run = await playTasks([unpack({ src: `${ROOT}/nope.tar.gz`, name: "unpack nope" })]);
    expect(run.code).toBe(2);
    expect(run.results[0]).toMatchObject({ host: "auth", task: "unpack nope", status: "failed" });
    expect(run.results[0]?.error).toContain(`archive ${ROOT}/nope.tar.gz is absent on the host`);
    expect(run.results[0]?.error).toMatch(
      /\(host auth, task "unpack nope", at .*tasks-from-env\.ts:\d+/,
    );
  });

  it("in check mode, is skipped rather than failed when an earlier getUrl would fetch the archive", async () => {
    const fresh = `${ROOT}/rel-2.tar.gz`;
    const run = await playTasks(
      [
        {
          module: "getUrl",
          args: { url: "http://127.0.0.1:9/rel-2.tar.gz", dest: fresh, sha256: "a".repeat(64) },
        },
        unpack({ src: fresh }),
      ],
      ["--check"],
    );
    expect(run.code, run.stdout).toBe(0);
    expect(run.results.map((r) => r.status)).toEqual(["changed", "skipped"]);
    expect(run.results[1]?.reason).toContain(`${fresh} would be changed by an earlier task`);
  });
});
