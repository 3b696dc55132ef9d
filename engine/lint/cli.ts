import type { PlaybookImporter } from "../cli.js";
import { parseUsage } from "../usage.js";
import { describeError, inputError, OmensError, toOmensError } from "../errors.js";
import type { Terminal } from "../output/plain.js";
import { EXIT } from "../runner/run.js";
import { maskSecrets } from "../secret.js";
import { levelOf } from "./format/describe.js";
import { formatHuman } from "./format/human.js";
import { formatJson } from "./format/json.js";
import { formatSarif } from "./format/sarif.js";
import { withStdoutReserved } from "../output/reserve-stdout.js";
import { lint, type LintReport } from "./lint.js";

const USAGE = `usage: omens-play lint [PATH...] [options]

  PATH                   playbook files, or folders of them (default: playbooks/)
  -i, --inventory FILE   inventory to check against; repeat for several
                         (default: $OMENS_INVENTORY or inventory/lab.yaml)
      --format FORMAT    human (default), json or sarif (SARIF 2.1.0)
      --strict           warnings also fail the run (exit 2)
      --no-typecheck     skip the TypeScript compiler (faster, less thorough)
  -h, --help             this text

exit codes: 0 no error found (warnings may be), 2 an error was found (or a warning under
            --strict), 5 bad usage (unknown option; a path or inventory that is missing,
            empty or not what it should be; a folder with no playbook), 1 internal error`;

const FORMATS = ["human", "json", "sarif"] as const;

interface LintCli {
  paths: string[];
  inventories: string[];
  format: (typeof FORMATS)[number];
  strict: boolean;
  typecheck: boolean;
}

/** `omens-play lint ...`: returns the exit code. */
export async function lintMain(
  argv: string[],
  terminal: Terminal,
  importPlaybook?: PlaybookImporter,
): Promise<number> {
  try {
    const options = parseLintCli(argv);
    if (options === "help") {
      terminal.out(USAGE);
      return EXIT.ok;
    }
    const report = await withStdoutReserved(options.format !== "human", () =>
      lint({ ...options, ...(importPlaybook ? { importPlaybook } : {}) }),
    );
    for (const warning of report.warnings) terminal.err(`warning: ${warning}`);
    print(report, options, terminal);
    return exitCode(report, options.strict);
  } catch (error) {
    const err =
      error instanceof OmensError ? error : toOmensError(error, { code: "BUG", family: "bug" });
    terminal.err(maskSecrets(`error: ${describeError(err)}`));
    return err.family === "bug" ? EXIT.bug : EXIT.input;
  }
}

function parseLintCli(argv: string[]): LintCli | "help" {
  const { values, positionals } = parseUsage(USAGE, {
    args: argv,
    allowPositionals: true,
    options: {
      inventory: { type: "string", short: "i", multiple: true },
      format: { type: "string" },
      strict: { type: "boolean" },
      "no-typecheck": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const format = values.format ?? "human";
  if (!(FORMATS as readonly string[]).includes(format))
    throw inputError(
      "usage",
      "USAGE",
      `--format must be one of ${FORMATS.join(", ")}, got "${format}"`,
    );
  return {
    paths: positionals.length > 0 ? positionals : ["playbooks"],
    inventories: values.inventory ?? [process.env.OMENS_INVENTORY ?? "inventory/lab.yaml"],
    format: format as LintCli["format"],
    strict: values.strict ?? false,
    typecheck: !values["no-typecheck"],
  };
}

function print(report: LintReport, options: LintCli, terminal: Terminal) {
  if (options.format === "json") terminal.out(formatJson(report));
  else if (options.format === "sarif") terminal.out(formatSarif(report));
  else formatHuman(report).forEach((line) => terminal.out(maskSecrets(line)));
}

function exitCode(report: LintReport, strict: boolean): number {
  const failing = report.findings.filter((f) => strict || levelOf(f) === "error");
  return failing.length > 0 ? EXIT.failed : EXIT.ok;
}
