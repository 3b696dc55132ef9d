import type { Deferrable } from "../dsl/deferred.js";
import { parse } from "yaml";
import { outputTail } from "../command-error.js";
import { callerLocation, makeTask, type Task, type TaskOptions } from "../dsl/task.js";
import { quote } from "../shell.js";
import { ArgReader } from "./args.js";
import type { ModuleDefinition } from "./types.js";

/** Arguments of the `tpmInfo` module. */
export interface TpmInfoArgs {
  /** How tpm2-tools reach the TPM, e.g. "device:/dev/tpmrm0" or "swtpm:host=127.0.0.1,port=2321". */
  tcti: string;
}

/** What `tpmInfo` registers under `result.tpm`. */
export interface TpmInfo {
  family: string;
  manufacturer: string;
  vendor: string;
  revision: string;
  firmwareVersion: string;
}

type Facts = { kind: "answered"; info: TpmInfo } | { kind: "silent"; detail: string };

/**
 * Asks the TPM for its fixed properties (family, manufacturer, firmware). Read-only; fails with
 * the TCTI in the message when the TPM does not answer.
 *
 * @example
 * tpmInfo({ tcti: "device:/dev/tpmrm0", register: "tpm" })
 */
export function tpmInfo(args: Deferrable<TpmInfoArgs> & TaskOptions): Task {
  return makeTask("tpmInfo", args, callerLocation());
}

export const tpmInfoModule: ModuleDefinition<{ tcti: string }, Facts> = {
  name: "tpmInfo",
  validate(raw, where) {
    return { tcti: new ArgReader("tpmInfo", raw, where, ["tcti"]).string("tcti") };
  },
  label: (args) => `tpmInfo ${args.tcti}`,
  async facts(args, reader) {
    const result = await reader.probe(
      `TPM2TOOLS_TCTI=${quote(args.tcti)} tpm2_getcap properties-fixed`,
    );
    if (result.rc !== 0)
      return { kind: "silent", detail: `exit code ${result.rc}: ${outputTail(result)}` };
    return { kind: "answered", info: parseProperties(result.stdout.toString("utf8")) };
  },
  plan(args, facts) {
    if (facts.kind === "silent") {
      return {
        status: "failed",
        reason: `the TPM does not answer through TCTI "${args.tcti}" (${facts.detail})`,
        ops: [],
      };
    }
    const { info } = facts;
    if (info.family !== "2.0") {
      return {
        status: "failed",
        reason: `TPM family is "${info.family}", expected "2.0" (TCTI "${args.tcti}")`,
        ops: [],
      };
    }
    const reason = `TPM ${info.family} by ${info.manufacturer}, firmware ${info.firmwareVersion}`;
    return { status: "ok", reason, ops: [], result: { tpm: info } };
  },
};

/** Reads tpm2_getcap's YAML output. */
export function parseProperties(text: string): TpmInfo {
  const props = (parse(text) ?? {}) as Record<
    string,
    { raw?: number | string; value?: string | number }
  >;
  const value = (key: string) => String(props[key]?.value ?? "").trim();
  const raw = (key: string) => Number(props[key]?.raw ?? 0);
  const fw1 = raw("TPM2_PT_FIRMWARE_VERSION_1");
  const vendor = [
    "TPM2_PT_VENDOR_STRING_1",
    "TPM2_PT_VENDOR_STRING_2",
    "TPM2_PT_VENDOR_STRING_3",
    "TPM2_PT_VENDOR_STRING_4",
  ]
    .map(value)
    .join("")
    .trim();
  return {
    family: value("TPM2_PT_FAMILY_INDICATOR"),
    manufacturer: value("TPM2_PT_MANUFACTURER"),
    vendor,
    revision: value("TPM2_PT_REVISION"),
    firmwareVersion: `${Math.floor(fw1 / 0x10000)}.${fw1 % 0x10000}`,
  };
}
