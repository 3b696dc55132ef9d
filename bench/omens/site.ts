// The benchmark workload for Omens: the same 45 tasks and handler as ../ansible/site.yml, with
// the Jinja templates as handlebars files whose logic (sums, filters, self tests) is computed
// here, in typed code, so that both engines write the same bytes.
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import {
  assert,
  command,
  copy,
  definePlaybook,
  file,
  lineinfile,
  defineRole,
  play,
  stat,
  template,
  Type,
  type HandlerRef,
  type Static,
  type Task,
  type TaskContext,
} from "../../engine/index.js";

interface Node {
  name: string;
  role: string;
  index: number;
  weight: number;
}

interface Shared {
  omens_domain: string;
  omens_trust_domain: string;
  omens_release: string;
  omens_base_port: number;
  omens_log_level: string;
  omens_backup_retention_days: number;
  omens_features: string[];
  omens_nodes: Node[];
}

const shared = parse(
  readFileSync(new URL("../workload/vars.yml", import.meta.url), "utf8"),
) as Shared;
const FILES = new URL("../workload/files/", import.meta.url).pathname;

/** What each host is, from the inventory. */
const HostVars = Type.Object({
  benchRoot: Type.String({ pattern: "^/tmp/.+" }),
  role: Type.String(),
  index: Type.Integer({ minimum: 0 }),
  weight: Type.Integer({ minimum: 0 }),
});

interface Me extends Static<typeof HostVars> {
  host: string;
}

/** Every value a template prints, computed once per host. */
function view(m: Me) {
  const port = (index: number) => shared.omens_base_port + index * 10;
  const nodes = shared.omens_nodes.map((n) => ({
    ...n,
    port: port(n.index),
    metricsPort: port(n.index) + 9,
    self: n.name === m.host,
    critical: n.role === m.role,
  }));
  return {
    ...m,
    root: m.benchRoot,
    domain: shared.omens_domain,
    trustDomain: shared.omens_trust_domain,
    release: shared.omens_release,
    retentionDays: shared.omens_backup_retention_days,
    port: port(m.index),
    serverPort: port(m.index) + 1,
    metricsPort: port(m.index) + 9,
    logLevelUpper: shared.omens_log_level.toUpperCase(),
    caTtl: m.role === "pki" ? "168h" : "24h",
    strategy: m.role === "authn" ? "least_conn" : "round_robin",
    featuresComma: shared.omens_features.join(","),
    featuresList: shared.omens_features.join(", "),
    banner: `omens ${m.role}`.toUpperCase(),
    hostUpper: m.host.toUpperCase(),
    nodes,
    peers: nodes.filter((n) => !n.self),
  };
}

const DIRECTORIES = ["etc/omens", "etc/omens/conf.d", "etc/systemd/system", "var/lib/omens"];

const COPIES: [src: string, dest: string, mode: string, restarts?: boolean][] = [
  ["omens.conf", "etc/omens/omens.conf", "0644", true],
  ["logging.yaml", "etc/omens/logging.yaml", "0644"],
  ["conf.d/10-limits.conf", "etc/omens/conf.d/10-limits.conf", "0644"],
  ["conf.d/20-tls.conf", "etc/omens/conf.d/20-tls.conf", "0644"],
  ["conf.d/30-metrics.conf", "etc/omens/conf.d/30-metrics.conf", "0644"],
  ["trust-bundle.pem", "etc/omens/trust-bundle.pem", "0644"],
  ["logrotate.conf", "etc/omens/logrotate.conf", "0644"],
  ["omens.service", "etc/systemd/system/omens.service", "0644", true],
  ["limits.conf.dist", "etc/omens/limits.conf.dist", "0644"],
  ["acl.json", "etc/omens/acl.json", "0640"],
];

const TEMPLATES: [src: string, dest: string, mode: string, restarts?: boolean][] = [
  ["node.yaml.hbs", "etc/omens/node.yaml", "0644", true],
  ["server.conf.hbs", "etc/omens/server.conf", "0640", true],
  ["defaults.env.hbs", "etc/omens/defaults.env", "0644"],
  ["hosts.hbs", "etc/omens/hosts", "0644"],
  ["upstreams.conf.hbs", "etc/omens/conf.d/40-upstreams.conf", "0644"],
  ["tls.yaml.hbs", "etc/omens/tls.yaml", "0644"],
  ["metrics.yaml.hbs", "etc/omens/metrics.yaml", "0644"],
  ["backup.sh.hbs", "var/lib/omens/backup.sh", "0755"],
  ["health.json.hbs", "etc/omens/health.json", "0644"],
  ["motd.hbs", "etc/omens/motd", "0644"],
];

const LIMITS: [regexp: string, line: string][] = [
  ["^omens\\s+soft\\s+nofile\\s", "omens soft nofile 65536"],
  ["^omens\\s+hard\\s+nofile\\s", "omens hard nofile 65536"],
  ["^omens\\s+soft\\s+nproc\\s", "omens soft nproc 4096"],
  ["^omens\\s+hard\\s+memlock\\s", "omens hard memlock unlimited"],
  ["^omens\\s+soft\\s+core\\s", "omens soft core unlimited"],
];

function tasks(m: Me, restart: HandlerRef): Task[] {
  const r = m.benchRoot;
  const v = view(m);
  const environment: [string, string][] = [
    ["OMENS_NODE", m.host],
    ["OMENS_ROLE", m.role],
    ["OMENS_LOG_LEVEL", shared.omens_log_level],
    ["OMENS_LISTEN", `127.0.0.1:${v.port}`],
    ["OMENS_STATE_DIR", `${r}/var/lib/omens`],
  ];
  const notify = (restarts?: boolean) => (restarts ? { notify: restart } : {});
  return [
    ...[...DIRECTORIES, "var/log/omens"].map((d) =>
      file({ path: `${r}/${d}`, state: "directory", mode: "0755" }),
    ),
    ...COPIES.map(([src, dest, mode, restarts]) =>
      copy({ src: FILES + src, dest: `${r}/${dest}`, mode, ...notify(restarts) }),
    ),
    ...TEMPLATES.map(([src, dest, mode, restarts]) =>
      template({ src, dest: `${r}/${dest}`, mode, vars: v, ...notify(restarts) }),
    ),
    ...commands(r),
    ...LIMITS.map(([regexp, line]) =>
      lineinfile({ path: `${r}/etc/omens/limits.conf`, regexp, line, create: true, mode: "0644" }),
    ),
    ...environment.map(([key, value]) =>
      lineinfile({
        path: `${r}/etc/omens/environment`,
        regexp: `^${key}=`,
        line: `${key}=${value}`,
        create: true,
        mode: "0644",
      }),
    ),
    stat({ path: `${r}/etc/omens/omens.conf`, register: "conf" }),
    stat({ path: `${r}/etc/omens/limits.conf`, register: "limits" }),
    stat({ path: `${r}/var/lib/omens/secret.bin`, register: "secret" }),
    stat({ path: `${r}/var/lib/omens/backup.sh`, register: "backup" }),
    assert({
      name: "the stack is in place",
      that: [
        (c) => statOf(c, "conf").exists === true && statOf(c, "conf").mode === "0644",
        (c) => statOf(c, "limits").exists === true && (statOf(c, "limits").size ?? 0) > 0,
        (c) => statOf(c, "secret").exists === true && statOf(c, "secret").size === 32,
        (c) => (parseInt(statOf(c, "backup").mode ?? "0", 8) & 0o111) !== 0,
      ],
      when: (c) => !c.check,
    }),
  ];
}

function commands(r: string): Task[] {
  const run = (shell: string, creates: string) => command({ shell, creates: `${r}/${creates}` });
  return [
    run(`cp ${r}/etc/omens/limits.conf.dist ${r}/etc/omens/limits.conf`, "etc/omens/limits.conf"),
    run(
      `dd if=/dev/urandom of=${r}/var/lib/omens/secret.bin bs=32 count=1 status=none`,
      "var/lib/omens/secret.bin",
    ),
    run(`touch ${r}/var/log/omens/audit.log`, "var/log/omens/audit.log"),
    run(`ln -s ${r}/etc/omens ${r}/var/lib/omens/config`, "var/lib/omens/config"),
    run(
      `tar -cf ${r}/var/lib/omens/etc-snapshot.tar -C ${r}/etc omens`,
      "var/lib/omens/etc-snapshot.tar",
    ),
  ];
}

function statOf(c: TaskContext, name: string) {
  return (c.registered[name]?.stat ?? {}) as { exists?: boolean; mode?: string; size?: number };
}

const workload = defineRole("bench", {
  vars: HostVars,
  handlers: (vars) => ({
    restart: command({
      name: "restart omens",
      shell: `touch ${vars.benchRoot}/var/lib/omens/restart-requested`,
    }),
  }),
  tasks: (vars, { handlers, host }) => tasks({ ...vars, host }, handlers.restart),
});

export default definePlaybook("bench workload", [play("bench", { roles: [workload()] })]);
