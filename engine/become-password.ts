import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { inputError } from "./errors.js";
import type { Inventory } from "./inventory/load.js";
import { registerSecretValue } from "./secret.js";

/**
 * Makes sure every become password a run needs is available before any host is contacted:
 * from the environment variable the inventory names, or, on a terminal, from a prompt that
 * does not echo. Without either, the run stops with an input error naming host and variable.
 */
export async function ensureBecomePasswords(
  inventory: Inventory,
  hosts: string[],
  usesBecome: (host: string) => boolean,
): Promise<void> {
  for (const name of hosts) {
    const spec = inventory.hosts.get(name)?.connection;
    const variable = spec?.becomePasswordEnv;
    if (!spec || !variable || !(spec.become || usesBecome(name))) continue;
    const known = process.env[variable];
    if (known) {
      registerSecretValue(known);
      continue;
    }
    if (!process.stdin.isTTY) {
      throw inputError(
        "usage",
        "BECOME_PASSWORD_UNSET",
        `host ${name} takes its become password from the environment variable ${variable}, which is not set`,
        { host: name, file: inventory.file },
        `export ${variable}=... before running, or run on a terminal to be asked`,
      );
    }
    process.env[variable] = await askHidden(
      `sudo password for ${spec.user}@${name} (${variable}): `,
    );
    registerSecretValue(process.env[variable] as string);
  }
}

function askHidden(prompt: string): Promise<string> {
  process.stderr.write(prompt);
  const muted = new Writable({ write: (_chunk, _encoding, done) => done() });
  const reader = createInterface({ input: process.stdin, output: muted, terminal: true });
  return new Promise((resolve) =>
    reader.question("", (answer) => {
      reader.close();
      process.stderr.write("\n");
      resolve(answer);
    }),
  );
}
