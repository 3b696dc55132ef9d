import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sshRoot } from "../helpers/lab.js";
import { playTasks, serveHttp, stopHttp } from "./modules-helpers.js";

const PORT = 8181;
const DIR = "/var/lib/omens-test-http";
const DEST_DIR = "/opt/omens-get-url";
const DEST = `${DEST_DIR}/artifact.bin`;
let base = "";
let sha = "";

const download = (extra: Record<string, unknown> = {}) => ({
  module: "getUrl",
  args: { url: `${base}/artifact.bin`, dest: DEST, sha256: sha, mode: "0640", ...extra },
});

describe("getUrl on a lab host, from an HTTP server on another lab host", () => {
  beforeAll(() => {
    sshRoot("spire", `mkdir -p ${DIR} && head -c 200000 /dev/urandom > ${DIR}/artifact.bin`);
    sha = sshRoot("spire", `sha256sum ${DIR}/artifact.bin`).split(" ")[0] ?? "";
    base = serveHttp("spire", DIR, PORT);
    sshRoot("auth", `rm -rf ${DEST_DIR} && mkdir -p ${DEST_DIR}`);
  });
  afterAll(() => {
    stopHttp("spire", PORT);
    sshRoot("auth", `rm -rf ${DEST_DIR}`);
  });

  it("check mode predicts the download and fetches nothing", async () => {
    const run = await playTasks([download()], ["--check"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.results[0]).toMatchObject({ status: "changed" });
    expect(run.results[0]?.reason).toContain(`would download ${base}/artifact.bin`);
    expect(sshRoot("auth", `ls -A ${DEST_DIR}`)).toBe("");
  });

  it("downloads, verifies and installs the file with its mode, then is ok on the second run", async () => {
    const first = await playTasks([download()]);
    expect(first.code, first.stdout).toBe(0);
    expect(first.results[0]?.status).toBe("changed");
    expect(sshRoot("auth", `sha256sum ${DEST}; stat -c %a ${DEST}`)).toBe(`${sha}  ${DEST}\n640\n`);
    const second = await playTasks([download()]);
    expect(second.results[0]).toMatchObject({ status: "ok" });
    expect(second.results[0]?.reason).toContain("already has sha256");
  });

  it("replaces a file whose contents differ, and check mode said it would", async () => {
    sshRoot("auth", `echo local edit > ${DEST}`);
    const check = await playTasks([download()], ["--check"]);
    expect(check.results[0]?.status).toBe("changed");
    expect(sshRoot("auth", `cat ${DEST}`)).toBe("local edit\n");
    const run = await playTasks([download()]);
    expect(run.results[0]?.status).toBe("changed");
    expect(sshRoot("auth", `sha256sum ${DEST}`)).toContain(sha);
  });

  it("fails on a checksum mismatch with both hashes, host, task and file:line, leaving nothing", async () => {
    const wrong = "0".repeat(64);
    const dest = `${DEST_DIR}/wrong.bin`;
    const run = await playTasks([download({ dest, sha256: wrong, name: "fetch wrong" })]);
    expect(run.code).toBe(2);
    const error = run.results[0]?.error ?? "";
    expect(error).toContain(`has sha256 ${sha}, expected ${wrong}`);
    expect(error).toMatch(/host auth, task "fetch wrong", at .*tasks-from-env\.ts:\d+/);
    expect(sshRoot("auth", `ls -A ${DEST_DIR}`)).toBe("artifact.bin\n");
  });

  it("fails with curl's meaning when the server answers 404, leaving nothing", async () => {
    const run = await playTasks([download({ url: `${base}/missing.bin`, dest: `${DEST_DIR}/m` })]);
    expect(run.code).toBe(2);
    expect(run.results[0]?.error).toMatch(/exit code 22 \(the server answered with an HTTP error/);
    expect(sshRoot("auth", `ls -A ${DEST_DIR}`)).toBe("artifact.bin\n");
  });

  it("keeps a token in the URL out of every output, even at -vvv with noLog", async () => {
    sshRoot("auth", `rm -f ${DEST}`);
    const url = `${base}/artifact.bin?token=SEKRET-TOKEN-42`;
    const run = await playTasks([download({ url, noLog: true })], ["-vvv"]);
    expect(run.code, run.stdout).toBe(0);
    expect(run.results[0]?.status).toBe("changed");
    expect(run.stdout + run.stderr).not.toContain("SEKRET-TOKEN-42");
    expect(sshRoot("auth", `sha256sum ${DEST}`)).toContain(sha);
  });

  it("refuses an invalid sha256 before any host is contacted", async () => {
    const run = await playTasks([download({ sha256: "12ab" })]);
    expect(run.code).toBe(5);
    expect(run.stderr + run.stdout).toContain(`"sha256" must be 64 hex digits, got "12ab"`);
  });
});
