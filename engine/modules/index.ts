import { inputError, type Where } from "../errors.js";
import { aptModule } from "./apt.js";
import { assertModule } from "./assert.js";
import { authorizedKeyModule } from "./authorized-key.js";
import { commandModule } from "./command.js";
import { copyModule } from "./copy.js";
import { fileModule } from "./file.js";
import { getUrlModule } from "./get-url.js";
import { groupModule } from "./group.js";
import { blockinfileModule, lineinfileModule } from "./lineinfile.js";
import { pingModule } from "./ping.js";
import { probeModule } from "./probe.js";
import { statModule } from "./stat.js";
import { systemdModule } from "./systemd.js";
import { templateModule } from "./template.js";
import { unarchiveModule } from "./unarchive.js";
import { uriModule } from "./uri.js";
import { userModule } from "./user.js";
import type { AnyModule } from "./types.js";
import { waitForModule } from "./wait-for.js";
import { tpmInfoModule } from "./tpm.js";
import { x509Module } from "./x509.js";

const modules = new Map<string, AnyModule>(
  [
    fileModule,
    copyModule,
    templateModule,
    lineinfileModule,
    blockinfileModule,
    commandModule,
    systemdModule,
    statModule,
    assertModule,
    waitForModule,
    pingModule,
    probeModule,
    tpmInfoModule,
    x509Module,
    getUrlModule,
    unarchiveModule,
    userModule,
    groupModule,
    uriModule,
    aptModule,
    authorizedKeyModule,
  ].map((m) => [m.name, m as AnyModule]),
);

/** Registers a module defined outside the engine (e.g. by a role). */
export function registerModule(module: AnyModule): void {
  modules.set(module.name, module);
}

/** The module for a task; an unknown name is an input error at load time. */
export function getModule(name: string, where: Where): AnyModule {
  const module = modules.get(name);
  if (!module)
    throw inputError(
      "playbook",
      "MODULE_UNKNOWN",
      `unknown module "${name}" (known: ${[...modules.keys()].join(", ")})`,
      where,
    );
  return module;
}
