import {
  command,
  defineRole,
  file,
  systemd,
  template,
  Type,
  type Static,
} from "../../engine/index.js";
import { quote } from "../../engine/shell.js";

const SCRIPT = "/usr/local/libexec/omens-devid-check";
/** The renewal check's systemd units: `<name>.service`, run by `<name>.timer`. */
export const DEVID_CHECK_UNIT = "omens-devid-check";
const UNIT = DEVID_CHECK_UNIT;

/** Variables of the devid-check role. */
export const DevidCheckVars = Type.Object(
  {
    devidDir: Type.String({ default: "/var/lib/tpm2-devid", pattern: "^/" }),
    /** The same window the devid role renews in. */
    devidRenewDays: Type.Integer({ default: 30, minimum: 1, maximum: 89 }),
    /** Where the last result is kept as JSON, for the health report and other monitors. */
    devidStatusDir: Type.String({ default: "/var/lib/omens", pattern: "^/" }),
    /** systemd calendar expression of the check (a random delay of up to an hour is added). */
    devidCheckCalendar: Type.String({ default: "daily", minLength: 1 }),
  },
  { additionalProperties: false },
);
type Vars = Static<typeof DevidCheckVars>;

/** Where the renewal check leaves its last result on a host. */
export const devidStatusFile = (vars: Pick<Vars, "devidStatusDir">) =>
  `${vars.devidStatusDir}/devid-status.json`;

/**
 * A systemd timer on each host that checks the DevID certificate on its own: a oneshot service
 * writes the days left to devid-status.json and fails when the certificate is inside the renewal
 * window (or missing), so `systemctl --failed` and the health report show it between playbook
 * runs. The service runs sandboxed, with no network and only its status folder writable.
 *
 * @example
 * play("all", { roles: [devidCheck({ devidRenewDays: 30 })] })
 */
export const devidCheck = defineRole("devid-check", {
  vars: DevidCheckVars,
  tasks: (vars) => [
    file({
      path: vars.devidStatusDir,
      state: "directory",
      owner: "root",
      group: "root",
      mode: "0755",
    }),
    file({ path: "/usr/local/libexec", state: "directory", mode: "0755" }),
    template({
      src: "omens-devid-check.sh.hbs",
      dest: SCRIPT,
      mode: "0755",
      vars: {
        certArg: quote(`${vars.devidDir}/devid.crt`),
        statusArg: quote(devidStatusFile(vars)),
        renewDays: vars.devidRenewDays,
      },
    }),
    template({
      src: "omens-devid-check.service.hbs",
      dest: `/etc/systemd/system/${UNIT}.service`,
      mode: "0644",
      vars: { script: SCRIPT, statusDir: vars.devidStatusDir },
    }),
    template({
      src: "omens-devid-check.timer.hbs",
      dest: `/etc/systemd/system/${UNIT}.timer`,
      mode: "0644",
      vars: { onCalendar: vars.devidCheckCalendar },
    }),
    systemd({ unit: `${UNIT}.timer`, state: "started", enabled: true, daemonReload: true }),
    command({
      name: "devid-check: a first result, without waiting for the timer",
      // A certificate inside the window makes the service fail; that is its report, not ours.
      shell: `systemctl start ${UNIT}.service || true`,
      creates: devidStatusFile(vars),
    }),
  ],
});
