import { chmodSync, existsSync } from "node:fs";
import { beforeEach, describe, expect, it } from "vitest";
import { CaseFiles, runCase, statuses } from "../helpers/cases.js";
import { hostPath } from "../helpers/lab.js";

// B06: under --check a command guarded by creates/removes predicts from its marker whether
// it would run; one without a guard is skipped with the reason. The dry run predicts the next
// real run exactly.
const files = new CaseFiles("ca", "/srv/omens-cases/b06");
const run = (...flags: string[]) =>
  runCase("test/fixtures/cases/b06-check-creates.ts", { OMENS_B06_DIR: files.dir }, ...flags);
const script = (body: string) => `#!/bin/sh\nset -e\n${body}\n`;

function reasonOf(run: Awaited<ReturnType<typeof runCase>>, task: string) {
  return run.events.find((e) => e.kind === "task-result" && e.task === task)?.reason;
}

describe("B06: check mode and creates/removes", () => {
  beforeEach(() => {
    files.reset({
      "bin/init": script(
        `mkdir -p ${files.dir}/state; touch ${files.dir}/state/.done; echo init >> ${files.dir}/runs.log`,
      ),
      "bin/report": script(`echo report >> ${files.dir}/runs.log`),
      "bin/drain": script(`rm -f ${files.dir}/state/queue; echo drain >> ${files.dir}/runs.log`),
      "state/queue": "job\n",
    });
    for (const bin of ["init", "report", "drain"])
      chmodSync(hostPath("ca", `${files.dir}/bin/${bin}`), 0o755);
  });

  it("predicts changed for a missing marker, runs nothing, and skips the unguarded command", async () => {
    const check = await run("--check");
    expect(check.code, check.stderr).toBe(0);
    expect(statuses(check, "ca")).toEqual({
      "T1 init": "changed",
      "T2 report": "skipped",
      "T3 drain queue": "changed",
      "T4 shell init": "changed",
    });
    expect(reasonOf(check, "T2 report")).toContain("check mode: no creates/removes");
    expect(existsSync(hostPath("ca", `${files.dir}/state/.done`))).toBe(false);
    expect(existsSync(hostPath("ca", `${files.dir}/state/queue`))).toBe(true);
    expect(existsSync(hostPath("ca", `${files.dir}/runs.log`))).toBe(false);

    const real = await run();
    expect(statuses(real, "ca")).toEqual({
      "T1 init": "changed",
      "T2 report": "changed",
      "T3 drain queue": "changed",
      "T4 shell init": "changed",
    });
    expect(files.read("runs.log")).toBe("init\nreport\ndrain\nshell\n");
  });

  it("reports ok under --check once the markers say the work is done, and a real run agrees", async () => {
    await run();
    const check = await run("--check");
    expect(statuses(check, "ca")).toEqual({
      "T1 init": "ok",
      "T2 report": "skipped",
      "T3 drain queue": "ok",
      "T4 shell init": "ok",
    });
    const second = await run();
    expect(statuses(second, "ca")).toMatchObject({
      "T1 init": "ok",
      "T3 drain queue": "ok",
      "T4 shell init": "ok",
    });
    expect(files.read("runs.log")).toBe("init\nreport\ndrain\nshell\nreport\n");
  });
});
