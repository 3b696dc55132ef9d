import { play, probe, type Play, type Task } from "../../engine/index.js";
import { quote } from "../../engine/shell.js";
import { roleVars } from "../common/compose.js";
import { STEP_CA_PATHS } from "../common/step-cert.js";
import { devidStatusFile } from "../devid/check.js";
import { DevidVars } from "../devid/index.js";
import { agentSandboxProbe } from "../hardening/index.js";
import { SpireAgentVars } from "../spire-agent/index.js";

/**
 * Monitoring checks as code: read-only probes of every service of the stack on every host.
 * Each play below is for one inventory group; a run prints the HEALTH table (or JSON with
 * --json / --report) and exits 3 when any probe is unhealthy. Nothing here changes a host.
 */

/**
 * Liveness probes ask up to three times, 2 s apart: one refused answer while a service
 * reconnects (an agent just after its server restarted) is not an outage.
 */
const PATIENT = { retries: 2, delay: 2 } as const;

/** Fewer days left than this on any certificate is unhealthy. */
const DEFAULT_MIN_DAYS = 14;

const text = (v: unknown, fallback: string) => (typeof v === "string" && v !== "" ? v : fallback);
const minDays = (vars: Record<string, unknown>) =>
  typeof vars.monitorCertMinDays === "number" ? vars.monitorCertMinDays : DEFAULT_MIN_DAYS;

/**
 * A certificate's days left, computed on the host with openssl. Healthy with at least `min`
 * days; the detail says how many and until when.
 */
export function certExpiry(component: string, label: string, path: string, min: number): Task {
  const p = quote(path);
  return probe({
    component,
    check: `${label} certificate (at least ${min} days left)`,
    shell: [
      `end=$(openssl x509 -in ${p} -noout -enddate 2>/dev/null) || { echo "${path}: missing or unreadable"; exit 2; }`,
      `end=\${end#notAfter=}; days=$(( ($(date -d "$end" +%s) - $(date +%s)) / 86400 ))`,
      `echo "$days days left (until $end)"`,
      `[ "$days" -ge ${min} ]`,
    ].join("; "),
  });
}

/**
 * The DevID names this host: another host's certificate copied here by mistake would make the
 * agent attest as that host (and a renewal evict that host's agent).
 */
function devidNamesHost(path: string, commonName: string): Task {
  const p = quote(path);
  return probe({
    component: "devid",
    check: `DevID certificate names this host (CN=${commonName})`,
    shell: [
      `subject=$(openssl x509 -in ${p} -noout -subject -nameopt RFC2253 2>/dev/null) || { echo "${path}: missing or unreadable"; exit 2; }`,
      `subject=\${subject#subject=}`,
      `case ",$subject," in *,CN=${quote(commonName)},*) echo "$subject" ;; *) echo "$subject, not CN=${commonName.replace(/["\\$`]/g, "")}"; exit 1 ;; esac`,
    ].join("; "),
  });
}

/** The unit runs (systemd's view); the detail is its state, e.g. "inactive" or "failed". */
function active(component: string, unit: string): Task {
  return probe({ component, check: "active", shell: `systemctl is-active ${quote(unit)}` });
}

/** The SPIRE server: healthy, its agents, its federation bundle endpoint. */
function spireServerChecks(vars: Record<string, unknown>): Task[] {
  const socket = quote(text(vars.spireServerSocket, "/run/spire/server/api.sock"));
  return [
    active("spire-server", "spire-server"),
    probe({
      component: "spire-server",
      check: "healthcheck",
      ...PATIENT,
      shell: `spire-server healthcheck -socketPath ${socket}`,
    }),
    probe({
      component: "spire-server",
      check: "attested agents, by attestor",
      shell: `out=$(spire-server agent list -socketPath ${socket} -output json) || exit 1; echo "$out" | tr ',' '\\n' | sed -n 's/.*"attestation_type": *"\\([a-z_]*\\)".*/\\1/p' | sort | uniq -c | awk '{ printf "%s%s %s", sep, $1, $2; sep=", " } END { if (NR == 0) { print "no agents"; exit 1 } print "" }'`,
    }),
    probe({
      component: "spire-server",
      check: "bundle endpoint serves keys (8443)",
      shell: `curl -sk --max-time 5 https://127.0.0.1:8443 | grep -q '"keys"' && echo "SPIFFE bundle with keys"`,
    }),
  ];
}

/** A SPIRE agent: healthy, serving a workload, its DevID, its renewal check and sandbox. */
function spireAgentChecks(vars: Record<string, unknown>): Task[] {
  const agent = roleVars(SpireAgentVars, vars);
  const devid = roleVars(DevidVars, vars);
  const socket = quote(agent.spireAgentSocket);
  const user = quote(text(vars.spireWorkloadProbeUser, "root"));
  const status = quote(
    devidStatusFile({ devidStatusDir: text(vars.devidStatusDir, "/var/lib/omens") }),
  );
  return [
    probe({
      component: "spire-agent",
      check: "healthcheck",
      ...PATIENT,
      shell: `spire-agent healthcheck -socketPath ${socket}`,
    }),
    probe({
      component: "spire-agent",
      check: "node attestor",
      shell: `sed -n 's/^ *NodeAttestor "\\([a-z_]*\\)".*/\\1/p' /etc/spire/agent/agent.conf | head -1 | grep .`,
    }),
    probe({
      component: "spire-agent",
      check: `a workload (${text(vars.spireWorkloadProbeUser, "root")}) gets an X509-SVID`,
      ...PATIENT,
      shell: `runuser -u ${user} -- spire-agent api fetch x509 -socketPath ${socket} | sed -n 's/^SPIFFE ID:[[:space:]]*//p' | head -1 | grep .`,
    }),
    probe({
      component: "spire-agent",
      check: "runs in its systemd sandbox",
      shell: `if ${agentSandboxProbe()}; then echo "no new privileges, read-only system"; elif systemctl is-active --quiet spire-agent; then echo "running outside its sandbox"; exit 1; else echo "not running"; exit 1; fi`,
    }),
    probe({
      component: "tpm",
      check: "answers",
      shell: `TPM2TOOLS_TCTI=${quote(agent.tpmTcti)} tpm2_getcap properties-fixed >/dev/null && echo "answers (${agent.tpmTcti.replace(/["\\$`]/g, "")})"`,
    }),
    certExpiry("devid", "DevID", `${devid.devidDir}/devid.crt`, minDays(vars)),
    devidNamesHost(`${devid.devidDir}/devid.crt`, devid.devidCommonName),
    probe({
      component: "devid",
      check: "renewal check timer: last result",
      shell: `systemctl is-active --quiet omens-devid-check.timer || { echo "timer not active"; exit 1; }; cat ${status} 2>/dev/null | grep -q '"state":"fresh"' && sed -n 's/.*"daysLeft":\\([0-9-]*\\).*/fresh, \\1 days left/p' ${status} || { echo "last check: $(cat ${status} 2>/dev/null || echo none)"; exit 1; }`,
    }),
  ];
}

/** step-ca: healthy over its own TLS, and its CA certificates' expiry. */
function stepCaChecks(vars: Record<string, unknown>): Task[] {
  const port = typeof vars.stepCaPort === "number" ? vars.stepCaPort : 9000;
  return [
    active("step-ca", "step-ca"),
    probe({
      component: "step-ca",
      check: "health",
      shell: `step ca health --ca-url https://127.0.0.1:${port} --root ${STEP_CA_PATHS.root}`,
    }),
    certExpiry("step-ca", "root CA", STEP_CA_PATHS.root, minDays(vars)),
    certExpiry("step-ca", "intermediate CA", STEP_CA_PATHS.intermediate, minDays(vars)),
  ];
}

/** OpenBao: initialised, unsealed and active (sys/health's status codes), and its TLS. */
function openbaoChecks(vars: Record<string, unknown>): Task[] {
  return [
    active("openbao", "openbao"),
    probe({
      component: "openbao",
      check: "initialised, unsealed, active",
      shell: `code=$(curl -s -o /tmp/.omens-bao-health -w '%{http_code}' --max-time 5 --cacert /etc/openbao/tls/ca.crt https://127.0.0.1:8200/v1/sys/health); body=$(cat /tmp/.omens-bao-health 2>/dev/null); rm -f /tmp/.omens-bao-health; case "$code" in 000) echo "no answer on 8200 (not running?)"; exit 1;; 200) echo "active, unsealed";; 429) echo "standby (unsealed)"; exit 1;; 501) echo "not initialised"; exit 1;; 503) echo "sealed"; exit 1;; *) echo "sys/health answered $code: $body"; exit 1;; esac`,
    }),
    certExpiry("openbao", "TLS", "/etc/openbao/tls/tls.crt", minDays(vars)),
  ];
}

/** nginx: running, serving the JWKS over TLS that the step-ca root verifies. */
function jwksChecks(vars: Record<string, unknown>): Task[] {
  const names = Array.isArray(vars.jwksDnsNames) ? (vars.jwksDnsNames as string[]) : [];
  const name = names[0] ?? "localhost";
  const port = typeof vars.jwksPort === "number" ? vars.jwksPort : 8444;
  return [
    active("nginx", "nginx"),
    probe({
      component: "nginx",
      check: `JWKS at https://${name}:${port}/keys`,
      shell: `body=$(curl -sf --max-time 5 --cacert /etc/nginx/tls/step-root.crt --resolve ${quote(`${name}:${port}:127.0.0.1`)} ${quote(`https://${name}:${port}/keys`)}) || { echo "no answer (curl exit $?)"; exit 1; }; n=$(printf '%s' "$body" | grep -o '"use":"jwt-svid"' | wc -l); echo "$n JWT signing key(s)"; [ "$n" -gt 0 ]`,
    }),
    certExpiry("nginx", "JWKS TLS", "/etc/nginx/tls/jwks.crt", minDays(vars)),
  ];
}

/** The health plays, one per group of the stack's inventory. */
export function healthPlays(): Play[] {
  return [
    play("servers", { name: "Health: SPIRE server", tasks: (vars) => spireServerChecks(vars) }),
    play("agents:servers", {
      name: "Health: SPIRE agents and DevIDs",
      tasks: (vars) => spireAgentChecks(vars),
    }),
    play("stepca", { name: "Health: step-ca", tasks: (vars) => stepCaChecks(vars) }),
    play("openbao", { name: "Health: OpenBao", tasks: (vars) => openbaoChecks(vars) }),
    play("jwks", { name: "Health: nginx JWKS", tasks: (vars) => jwksChecks(vars) }),
  ];
}
