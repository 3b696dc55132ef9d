#!/usr/bin/env node
// Registers the TypeScript loader, so playbooks, roles and the engine run with no build step.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../engine/cli.ts");
process.exitCode = await main(process.argv.slice(2));
