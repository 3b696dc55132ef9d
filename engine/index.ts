/** The public DSL: everything a playbook or role imports comes from here. */
export {
  definePlaybook,
  play,
  type Play,
  type PlayContext,
  type Playbook,
  type PlaySpec,
  type SerialStep,
} from "./dsl/playbook.js";
export { defineRole, type RoleContext, type RoleFactory, type RoleSpec } from "./dsl/role.js";
export type {
  Failure,
  HandlerRef,
  Task,
  TaskContext,
  TaskOptions,
  TaskResult,
} from "./dsl/task.js";
export { block, type Block, type BlockOptions, type BlockSpec, type Step } from "./dsl/block.js";
export { loop, type ItemResult, type LoopOptions, type LoopResult } from "./dsl/loop.js";
export type {
  AddressFacts,
  HostFacts,
  InitFacts,
  InstalledPackage,
  OsFacts,
  PackageFact,
  TpmFacts,
} from "./facts/gathered.js";
export { Secret } from "./secret.js";
export { deferred, type Deferred, type Deferrable } from "./dsl/deferred.js";
export { Type, type Static } from "@sinclair/typebox";
export { file, type FileArgs } from "./modules/file.js";
export { copy, type CopyArgs } from "./modules/copy.js";
export { template, type TemplateArgs, MANAGED_HEADER } from "./modules/template.js";
export {
  lineinfile,
  blockinfile,
  type LineinfileArgs,
  type BlockinfileArgs,
} from "./modules/lineinfile.js";
export { command, type CommandArgs } from "./modules/command.js";
export { systemd, type SystemdArgs } from "./modules/systemd.js";
export { stat, type StatArgs, type StatRegistered, type StatResult } from "./modules/stat.js";
export { assert, type AssertArgs } from "./modules/assert.js";
export { waitFor, type WaitForArgs } from "./modules/wait-for.js";
export { ping } from "./modules/ping.js";
export {
  probe,
  type ProbeArgs,
  type ProbeOptions,
  type ProbeOutput,
  type ProbeResult,
} from "./modules/probe.js";
export type { ChangeRow, HealthRow } from "./events.js";
export { tpmInfo, type TpmInfoArgs, type TpmInfo } from "./modules/tpm.js";
export { x509, type X509Args, type CertFacts } from "./modules/x509.js";
export { getUrl, type GetUrlArgs } from "./modules/get-url.js";
export { unarchive, type UnarchiveArgs } from "./modules/unarchive.js";
export { user, type UserArgs } from "./modules/user.js";
export { group, type GroupArgs } from "./modules/group.js";
export { uri, type UriArgs, type UriResult } from "./modules/uri.js";
export { apt, type AptArgs } from "./modules/apt.js";
export type { NamedResourceOptions } from "./modules/named-task.js";
export { authorizedKey, type AuthorizedKeyArgs } from "./modules/authorized-key.js";
