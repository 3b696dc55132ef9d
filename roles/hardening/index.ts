import { command, defineRole, file, systemd, template, Type } from "../../engine/index.js";
import { withOptions } from "../common/compose.js";
import { agentHealth, SpireAgentVars } from "../spire-agent/index.js";

const SSHD_DROP_IN = "/etc/ssh/sshd_config.d/50-omens-hardening.conf";
const AGENT_DROP_IN_DIR = "/etc/systemd/system/spire-agent.service.d";

/** Variables of the hardening role. */
export const HardeningVars = Type.Object(
  {
    /** Key-only SSH logins (root too), no forwarding of X11 or agents. */
    hardenSshd: Type.Boolean({ default: true }),
    sshMaxAuthTries: Type.Integer({ default: 3, minimum: 1, maximum: 10 }),
    /** A systemd sandbox for spire-agent; only hosts that run one. */
    hardenSpireAgent: Type.Boolean({ default: true }),
    ...Type.Pick(SpireAgentVars, ["spireAgentDataDir", "spireAgentSocket"]).properties,
  },
  { additionalProperties: false },
);

/**
 * Host hardening for the stack: sshd takes keys only, checked with `sshd -t` before it is
 * reloaded (a config sshd rejects is never loaded, the running daemon keeps serving); the SPIRE
 * agent runs in a systemd sandbox (read-only system, its data folder writable, no privilege
 * gain), restarted once and gated healthy.
 *
 * @example
 * play("all", { roles: [hardening({ sshMaxAuthTries: 3 })] })
 */
export const hardening = defineRole("hardening", {
  vars: HardeningVars,
  handlers: (vars) => ({
    sshdValid: command({
      name: "hardening: sshd -t accepts the configuration",
      argv: ["sshd", "-t"],
      changedWhen: () => false,
    }),
    sshdReload: systemd({ name: "hardening: reload sshd", unit: "ssh", state: "reloaded" }),
    agentRestart: systemd({
      name: "hardening: restart spire-agent in its sandbox",
      unit: "spire-agent",
      state: "restarted",
      daemonReload: true,
    }),
    agentHealthy: withOptions(agentHealth(vars), { name: "hardening: spire-agent healthy" }),
  }),
  tasks: (vars, { handlers }) => [
    ...(vars.hardenSshd
      ? [
          template({
            src: "sshd-hardening.conf.hbs",
            dest: SSHD_DROP_IN,
            mode: "0644",
            vars: { maxAuthTries: vars.sshMaxAuthTries },
            notify: [handlers.sshdValid, handlers.sshdReload],
          }),
        ]
      : []),
    ...(vars.hardenSpireAgent
      ? [
          command({
            name: "hardening: does this host run spire-agent",
            shell: "systemctl cat spire-agent.service >/dev/null 2>&1",
            register: "hardeningHasAgent",
            checkMode: false,
            failedWhen: () => false,
            changedWhen: () => false,
          }),
          file({
            path: AGENT_DROP_IN_DIR,
            state: "directory",
            mode: "0755",
            when: (ctx) => ctx.registered.hardeningHasAgent?.rc === 0,
          }),
          template({
            src: "spire-agent-hardening.conf.hbs",
            dest: `${AGENT_DROP_IN_DIR}/50-omens-hardening.conf`,
            mode: "0644",
            vars: { dataDir: vars.spireAgentDataDir },
            when: (ctx) => ctx.registered.hardeningHasAgent?.rc === 0,
            notify: [handlers.agentRestart, handlers.agentHealthy],
          }),
          command({
            name: "hardening: the running spire-agent is in its sandbox",
            shell: `if ${agentSandboxProbe()}; then echo sandboxed; else echo "not sandboxed yet"; fi`,
            when: (ctx) => ctx.registered.hardeningHasAgent?.rc === 0,
            checkMode: false,
            changedWhen: (r) => String(r.stdout).trim() !== "sandboxed",
            notify: [handlers.agentRestart, handlers.agentHealthy],
          }),
        ]
      : []),
  ],
});

/**
 * True when the running spire-agent process (not just its unit file) is sandboxed: the kernel
 * says it cannot gain privileges, and its root is mounted read-only.
 */
export function agentSandboxProbe(): string {
  const pid = `$(systemctl show -p MainPID --value spire-agent)`;
  return `{ p=${pid}; [ "$p" != 0 ] && grep -q '^NoNewPrivs:[[:space:]]*1' /proc/$p/status && awk '$5 == "/" { print $6 }' /proc/$p/mountinfo | grep -q '^ro'; }`;
}
