import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { assert, command, copy, definePlaybook, play, type Playbook } from "../../engine/index.js";
import { main } from "../../engine/cli.js";
import { owedDir } from "../../engine/runner/owed.js";

/** A terminal that keeps what the CLI prints, and shows each line of stdout to `onOut`. */
function recordingTerminal(onOut: (line: string) => void = () => undefined) {
  const out: string[] = [];
  const err: string[] = [];
  const terminal = {
    out: (l: string) => {
      out.push(l);
      onOut(l);
    },
    err: (l: string) => void err.push(l),
    color: false,
  };
  return { terminal, out, err };
}

/**
 * A folder with an inventory of two hosts run on this machine and a playbook file; `run` gives
 * the CLI that file, importing `playbook` for it, with the inventory and the given options.
 * `watch` sees each line of stdout as it is printed.
 */
function localSite(playbook: (dir: string) => Playbook) {
  const dir = mkdtempSync(join(tmpdir(), "omens-cli-"));
  const inventory = join(dir, "inventory.yaml");
  writeFileSync(
    inventory,
    "all:\n  hosts:\n    box1: { connection: local }\n    box2: { connection: local }\n",
  );
  const file = join(dir, "site.ts");
  writeFileSync(file, "// imported by the test's own importer\n");
  const watch: { onOut: (line: string) => void } = { onOut: () => undefined };
  const run = async (...options: string[]) => {
    const recorded = recordingTerminal((line) => watch.onOut(line));
    const importer = () => Promise.resolve({ default: playbook(dir) });
    const code = await main([file, "-i", inventory, ...options], recorded.terminal, importer);
    return { code, ...recorded };
  };
  return { dir, run, watch };
}

/** One play whose task fails on box2, after a shell command of the test's choosing. */
const failOnBox2 = (before: string) =>
  definePlaybook("site", [
    play("all", {
      tasks: (vars) => [
        command({
          name: "fail on box2",
          shell: `${before}; test ${String(vars.inventoryHostname)} != box2`,
        }),
      ],
    }),
  ]);

// The line of failOnBox2's command( call: the line before its task name.
const failOnBox2Line = readFileSync(fileURLToPath(import.meta.url), "utf8")
  .split("\n")
  .findIndex((line) => line.includes('name: "fail on box2"'));

describe("usage errors", () => {
  it("name an unknown option in balanced quotes (exit 5)", async () => {
    const { terminal, err } = recordingTerminal();
    expect(await main(["site.ts", "--chek"], terminal)).toBe(5);
    const first = err.join("\n").split("\n")[0] ?? "";
    expect(first).toBe("error: Unknown option '--chek'. Did you mean --check?");
  });

  it("name the near option for lint too (exit 5)", async () => {
    const { terminal, err } = recordingTerminal();
    expect(await main(["lint", "--strct"], terminal)).toBe(5);
    expect(err.join("\n").split("\n")[0]).toBe(
      "error: Unknown option '--strct'. Did you mean --strict?",
    );
  });

  it("say how to pass a file whose name starts with '-' when no option is near (exit 5)", async () => {
    const { terminal, err } = recordingTerminal();
    expect(await main(["site.ts", "--my-playbook.ts"], terminal)).toBe(5);
    expect(err.join("\n").split("\n")[0]).toBe(
      "error: Unknown option '--my-playbook.ts'. A playbook file whose name starts with '-' goes after '--', as in: -- --my-playbook.ts",
    );
  });

  it("refuse a folder or a file of another kind as the playbook, before reading it (exit 5)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-cli-"));
    const yml = join(dir, "site.yml");
    writeFileSync(yml, "- hosts: all\n");
    for (const [path, message] of [
      [dir, `error: ${dir} is a folder: give one playbook file (omens-play lint takes folders)`],
      [
        yml,
        `error: ${yml} is not a playbook: omens-play runs TypeScript or JavaScript modules (.ts, .mts, .js, .mjs) whose default export is definePlaybook(...)`,
      ],
    ] as const) {
      const { terminal, err } = recordingTerminal();
      expect(await main([path, "-i", "inventory/lab.yaml"], terminal)).toBe(5);
      expect(err.join("\n")).toBe(message);
    }
  });
});

describe("--list-hosts", () => {
  it("warns of a --limit pattern that matches no host, as a run does", async () => {
    const { run } = localSite(() => failOnBox2("true"));
    const { code, out, err } = await run("--list-hosts", "--limit", "box1,nomatch");
    expect(code).toBe(0);
    expect(out).toEqual(["play all (hosts: all)", "  hosts (1):", "    box1"]);
    expect(err).toEqual(["warning: --limit: pattern 'nomatch' matched no hosts"]);
  });
});

describe("--list-hosts --list-tasks --list-tags --json", () => {
  it("prints the listings as one JSON document", async () => {
    const { run } = localSite(() => failOnBox2("true"));
    const { code, out } = await run("--list-hosts", "--list-tasks", "--list-tags", "--json");
    expect(code).toBe(0);
    expect(out).toHaveLength(1);
    expect(JSON.parse(out[0] ?? "")).toEqual({
      plays: [
        {
          name: "all",
          pattern: "all",
          hosts: ["box1", "box2"],
          tasks: [{ name: "fail on box2", tags: [] }],
        },
      ],
      tags: [],
    });
  });
});

describe("--limit", () => {
  it("that matches no host says so once per term, runs no play and checks no host", async () => {
    const { run } = localSite(() =>
      definePlaybook("site", [
        play("all", { tasks: [command({ argv: ["true"], changedWhen: () => false })] }),
        play("box1", { tasks: [command({ argv: ["true"], changedWhen: () => false })] }),
      ]),
    );
    const { code, out, err } = await run("--check", "--limit", "nomatch");
    expect(code).toBe(0);
    expect(err).toEqual(["warning: --limit: pattern 'nomatch' matched no hosts"]);
    expect(out.join("\n")).not.toContain("PLAY ");
    expect(out.slice(-2)).toEqual(["DRIFT (check mode)", "  no host was checked"]);
  });

  it("that names only hosts outside the plays says no connection was opened", async () => {
    const { run } = localSite(() =>
      definePlaybook("site", [
        play("box1", { tasks: [command({ argv: ["true"], changedWhen: () => false })] }),
      ]),
    );
    const { code, err } = await run("--limit", "box2");
    expect(code).toBe(0);
    expect(err).toEqual(["warning: no hosts matched --limit 'box2'; no connection opened"]);
  });

  it("refuses an empty or blank pattern as naming no host (exit 5)", async () => {
    for (const limit of ["", "  ", " , "]) {
      const { terminal, err } = recordingTerminal();
      expect(await main(["site.ts", "--limit", limit], terminal)).toBe(5);
      expect(err.join("\n")).toBe("error: --limit names no host");
    }
  });
});

describe("a failed task", () => {
  it("says where it is written when its error does not", async () => {
    const { run } = localSite(() => failOnBox2("true"));
    const { code, out } = await run();
    expect(code).toBe(2);
    const lines = out.join("\n").split("\n");
    const failed = lines.findIndex((l) => /fail on box2 +box2 +failed/.test(l));
    expect(lines.slice(failed + 1, failed + 3)).toEqual([
      "      exit code 1 (general error): true; test box2 != box2",
      `      at ${fileURLToPath(import.meta.url)}:${failOnBox2Line}:9`,
    ]);
  });
});

describe("options given an empty value", () => {
  it.each(["--report", "--retry-file", "--start-at-task"])(
    "%s '' is a usage error (exit 5), not the option left out",
    async (option) => {
      const { run } = localSite(() => failOnBox2("true"));
      const { code, out, err } = await run(option, "");
      expect(code).toBe(5);
      expect(err.join("\n")).toBe(`error: ${option} is given an empty value`);
      expect(out).toEqual([]);
    },
  );
});

describe("a play whose hosts all failed before it", () => {
  it("says so, rather than that its pattern matched no hosts", async () => {
    const { run } = localSite(() =>
      definePlaybook("site", [
        ...failOnBox2("true").plays,
        play("box2", {
          name: "after",
          tasks: [command({ argv: ["true"], changedWhen: () => false })],
        }),
      ]),
    );
    const { code, err } = await run();
    expect(code).toBe(2);
    expect(err).toContain(
      'warning: play "after": every host it matched (box2) failed, was unreachable or was left out of a stopped rollout earlier; nothing to do',
    );
  });
});

describe("a command whose failure failedWhen accepts", () => {
  it("is ok, and its line says the failure was accepted rather than reading as an error", async () => {
    const { run } = localSite(() =>
      definePlaybook("site", [
        play("all", {
          tasks: [
            command({
              name: "is the marker there",
              argv: ["test", "-e", "/nonexistent/omens-marker"],
              failedWhen: () => false,
              changedWhen: () => false,
            }),
            command({
              name: "a two-line probe",
              shell: "true\ntest -e /nonexistent/omens-marker",
              failedWhen: () => false,
              changedWhen: () => false,
            }),
          ],
        }),
      ]),
    );
    const { code, out } = await run();
    expect(code).toBe(0);
    const line = out.find((l) => l.includes("is the marker there") && l.includes("box1"));
    expect(line).toMatch(/ ok +accepted by failedWhen: exit code 1 \(general error\): test -e /);
    // A reason of several lines is shown by its first on the result line.
    const probe = out.find((l) => l.includes("a two-line probe") && l.includes("box1"));
    expect(probe).toMatch(
      / ok +accepted by failedWhen: exit code 1 \(general error\): true \.\.\. \(\d+ ms\)$/,
    );
  });
});

describe("--report", () => {
  it("refuses a path that is a folder before any host is contacted (exit 5)", async () => {
    const { dir, run } = localSite(() => failOnBox2("true"));
    const { code, out, err } = await run("--report", dir);
    expect(code).toBe(5);
    expect(err.join("\n")).toBe(`error: --report ${dir}: this is a folder, not a file`);
    expect(out).toEqual([]);
  });
});

describe("--inventory", () => {
  it("refuses an empty value and a folder, naming the argument (exit 5)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "omens-cli-"));
    for (const [inventory, message] of [
      ["", "error: --inventory is given an empty value"],
      [dir, `error: cannot read inventory ${dir}: it is a folder; name the inventory's YAML file`],
    ] as const) {
      const { terminal, err } = recordingTerminal();
      expect(await main(["site.ts", "-i", inventory], terminal)).toBe(5);
      expect(err.join("\n").split("\n")[0]).toBe(message);
    }
  });
});

describe("--retry-file", () => {
  it("refuses a folder that does not exist before any host is contacted (exit 5)", async () => {
    const { run } = localSite(() => failOnBox2("true"));
    const { code, out, err } = await run("--retry-file", "/nonexistent/omens/x.retry");
    expect(code).toBe(5);
    expect(err.join("\n")).toContain(
      "--retry-file /nonexistent/omens/x.retry: the folder /nonexistent/omens does not exist",
    );
    expect(out).toEqual([]);
  });

  it("refuses a path that is a folder before any host is contacted (exit 5)", async () => {
    const { dir, run } = localSite(() => failOnBox2("true"));
    const { code, out, err } = await run("--retry-file", dir);
    expect(code).toBe(5);
    expect(err.join("\n")).toContain(`--retry-file ${dir}: this is a folder, not a file`);
    expect(out).toEqual([]);
  });

  it("lists the failed host in the file it names", async () => {
    const { dir, run } = localSite(() => failOnBox2("true"));
    const { code, err } = await run("--retry-file", join(dir, "failed.retry"));
    expect(code).toBe(2);
    expect(readFileSync(join(dir, "failed.retry"), "utf8")).toBe("box2\n");
    expect(err.join("\n")).toContain(`retry with --limit @${join(dir, "failed.retry")}`);
  });

  it("is a warning, not a crash, when its folder is gone by the end of the run", async () => {
    const { dir, run } = localSite((dir) => failOnBox2(`rm -rf ${join(dir, "out")}`));
    mkdirSync(join(dir, "out"));
    const { code, out, err } = await run("--retry-file", join(dir, "out", "x.retry"));
    expect(code).toBe(2);
    expect(out.join("\n")).toMatch(/^RECAP/m);
    expect(err.join("\n")).toMatch(
      /^warning: cannot write the retry file .*out\/x\.retry: ENOENT/m,
    );
    expect(existsSync(join(dir, "out"))).toBe(false);
  });
});

/** box2 fails at once; box1's first task takes a second, notifies a handler, and a task follows. */
const slowOnBox1 = definePlaybook("site", [
  play("all", {
    handlers: { "reload box": command({ shell: "true" }) },
    tasks: (vars, { handlers }) => [
      command({
        name: "slow on box1",
        shell: vars.inventoryHostname === "box1" ? "sleep 1" : "exit 1",
        notify: handlers["reload box"],
      }),
      command({ name: "after the slow one", shell: "true" }),
    ],
  }),
]);

describe("a stop signal during a run", () => {
  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const)(
    "%s lets the running task finish, then prints the recap, writes the retry file and exits %i",
    async (signal, exitCode) => {
      const { dir, run, watch } = localSite(() => slowOnBox1);
      // Sent once box2 has failed, while box1 is still inside its slow task.
      watch.onOut = (line) => {
        if (/slow on box1 +box2 +failed/.test(line)) setImmediate(() => process.emit(signal));
      };
      const { code, out, err } = await run();
      const printed = out.join("\n");
      expect(code).toBe(exitCode);
      expect(printed).toMatch(/slow on box1 +box1 +changed/);
      expect(printed).not.toContain("after the slow one");
      expect(printed).toContain("box1: notified, not run: reload box (run interrupted)");
      expect(printed).toMatch(/^RECAP/m);
      expect(err.join("\n")).toContain("interrupted: running tasks finish, no new task starts");
      expect(readFileSync(join(dir, "site.retry"), "utf8")).toBe("box2\n");
      expect(process.listenerCount(signal)).toBe(0);
    },
  );
});

describe("a stop signal during the handlers", () => {
  it("lets the running handler finish and leaves the ones after it owed", async () => {
    rmSync(owedDir(), { recursive: true, force: true });
    const { dir, run, watch } = localSite((dir) =>
      definePlaybook("site", [
        play("all", {
          handlers: {
            "slow restart": command({ shell: `sleep 2; touch ${join(dir, "restarted")}` }),
            "after it": command({ shell: `touch ${join(dir, "after")}` }),
          },
          tasks: (vars, { handlers }) =>
            vars.inventoryHostname === "box1"
              ? [
                  copy({
                    name: "config",
                    dest: join(dir, "box1.conf"),
                    content: "v=1\n",
                    notify: [handlers["slow restart"], handlers["after it"]],
                  }),
                ]
              : [],
        }),
      ]),
    );
    // Half a second into the slow handler, which starts as soon as the config task ends.
    watch.onOut = (line) => {
      if (/config +box1 +changed/.test(line)) setTimeout(() => process.emit("SIGINT"), 500);
    };
    const { code, out } = await run();
    expect(code).toBe(130);
    expect(existsSync(join(dir, "restarted"))).toBe(true);
    expect(existsSync(join(dir, "after"))).toBe(false);
    expect(out.join("\n")).toContain("box1: notified, not run: after it (run interrupted)");
    const records = readdirSync(owedDir()).map((f) => readFileSync(join(owedDir(), f), "utf8"));
    expect(records).toEqual(["box1\tafter it\n"]);
    rmSync(owedDir(), { recursive: true, force: true });
  });
});

describe("--check --report", () => {
  /** Every host would get two files; box2 fails between them. */
  const stopsOnBox2 = (dir: string) =>
    definePlaybook("site", [
      play("all", {
        tasks: (vars) => [
          copy({ dest: join(dir, `${String(vars.inventoryHostname)}-a`), content: "a\n" }),
          assert({ name: "not box2", that: () => vars.inventoryHostname !== "box2" }),
          copy({ dest: join(dir, `${String(vars.inventoryHostname)}-b`), content: "b\n" }),
        ],
      }),
    ]);

  it("marks a host whose run failed as not checked, in the DRIFT lines and the report", async () => {
    const { dir, run } = localSite(stopsOnBox2);
    const report = join(dir, "drift.json");
    const { code, out } = await run("--check", "--report", report);
    expect(code).toBe(2);
    const printed = out.join("\n").split("\n");
    expect(printed.slice(printed.indexOf("DRIFT (check mode)"))).toEqual([
      "DRIFT (check mode)",
      "  box1  2 tasks would change",
      "    play: all (2 tasks)",
      `      copy ${join(dir, "box1-a")}`,
      `      copy ${join(dir, "box1-b")}`,
      "  box2  not checked: a task failed (1 task would change before it stopped)",
      "    play: all (1 task)",
      `      copy ${join(dir, "box2-a")}`,
    ]);
    const written = JSON.parse(readFileSync(report, "utf8")) as { drift?: unknown };
    expect(written.drift).toEqual([
      { host: "box1", checked: true, wouldChange: 2 },
      { host: "box2", checked: false, reason: "a task failed", wouldChange: 1 },
    ]);
  });

  it("marks every host of a check stopped by Ctrl-C as not checked, never as drift-free", async () => {
    // Ctrl-C comes once box1's first file would change, while box2 has nothing to change yet.
    // Neither host is checked to the end: the slow task and the last file are still ahead.
    const { dir, run, watch } = localSite((dir) =>
      definePlaybook("site", [
        play("all", {
          tasks: (vars) => [
            copy({
              dest: join(dir, "box1-a"),
              content: "a\n",
              when: () => vars.inventoryHostname === "box1",
            }),
            command({ name: "slow", shell: "sleep 1", checkMode: false }),
            copy({ dest: join(dir, `${String(vars.inventoryHostname)}-b`), content: "b\n" }),
          ],
        }),
      ]),
    );
    watch.onOut = (line) => {
      if (line.includes("box1-a")) setImmediate(() => process.emit("SIGINT"));
    };
    const report = join(dir, "drift.json");
    const { code, out } = await run("--check", "--report", report);
    expect(code).toBe(130);
    const printed = out.join("\n").split("\n");
    expect(printed.slice(printed.indexOf("DRIFT (check mode)"))).toEqual([
      "DRIFT (check mode)",
      "  box1  not checked: the run was interrupted (1 task would change before it stopped)",
      "    play: all (1 task)",
      `      copy ${join(dir, "box1-a")}`,
      "  box2  not checked: the run was interrupted",
    ]);
    const written = JSON.parse(readFileSync(report, "utf8")) as { drift?: unknown };
    expect(written.drift).toEqual([
      { host: "box1", checked: false, reason: "the run was interrupted", wouldChange: 1 },
      { host: "box2", checked: false, reason: "the run was interrupted", wouldChange: 0 },
    ]);
  });
});
