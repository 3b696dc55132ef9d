import { Type } from "../../engine/index.js";

/** A TCP port, with the role's usual one as default. */
export function Port(fallback: number) {
  return Type.Integer({ default: fallback, minimum: 1, maximum: 65535 });
}

/** The log levels SPIRE's server and agent accept. */
export const SpireLogLevel = Type.Union(
  [Type.Literal("DEBUG"), Type.Literal("INFO"), Type.Literal("WARN"), Type.Literal("ERROR")],
  { default: "INFO" },
);
