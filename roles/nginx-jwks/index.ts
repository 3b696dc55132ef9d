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
import { healthGate } from "../common/gates.js";
import { stepCertificate, stepRoot, stepSigner } from "../common/step-cert.js";
import { Port } from "../common/schema.js";

const SITE = "/etc/nginx/sites-available/omens-jwks.conf";
const CANDIDATE_DIR = "/etc/nginx/omens-candidate";
const CANDIDATE = `${CANDIDATE_DIR}/omens-jwks.conf`;
const TLS = "/etc/nginx/tls";

/** Variables of the nginx-jwks role. */
export const NginxJwksVars = Type.Object(
  {
    /** Names the JWKS is served under; the first is the certificate's CN. */
    jwksDnsNames: Type.Array(Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9.-]*$" }), {
      minItems: 1,
    }),
    jwksPort: Port(8444),
    spireBundleEndpointPort: Port(8443),
    stepCaHost: Type.String({ default: "ca" }),
    stepCaPort: Type.Integer({ default: 9000 }),
  },
  { additionalProperties: false },
);
type Vars = Static<typeof NginxJwksVars>;

/**
 * Serves the SPIRE bundle's keys at https://<name>:8444/keys through Debian's nginx, with a
 * step-ca certificate. A new server block is first written to a candidate path and checked with
 * `nginx -t -c`; only a config that passes is installed and reloaded, so a bad one leaves the
 * running nginx untouched.
 *
 * @example
 * play("jwks", { roles: [nginxJwks({ jwksDnsNames: ["spire.funlab.casa"] })] })
 */
export const nginxJwks = defineRole("nginx-jwks", {
  vars: NginxJwksVars,
  handlers: (vars) => ({
    reload: systemd({ name: "nginx: reload", unit: "nginx", state: "reloaded" }),
    healthy: jwksHealth(vars),
  }),
  tasks: (vars, { handlers }) => {
    const reload = [handlers.reload, handlers.healthy];
    const view = jwksConfView(vars);
    return [
      file({ path: TLS, state: "directory", owner: "root", group: "root", mode: "0750" }),
      file({ path: CANDIDATE_DIR, state: "directory", owner: "root", group: "root", mode: "0750" }),
      ...stepRoot({
        id: "nginx",
        caHost: vars.stepCaHost,
        caRoot: "/etc/step-ca/certs/root_ca.crt",
        dest: `${TLS}/step-root.crt`,
      }),
      ...stepCertificate({
        id: "nginxTls",
        label: "nginx TLS",
        signer: stepSigner(vars.stepCaHost, vars.stepCaPort, "services"),
        commonName: vars.jwksDnsNames[0] ?? "localhost",
        dnsNames: vars.jwksDnsNames,
        certPath: `${TLS}/jwks.crt`,
        owner: "root",
        group: "root",
        mode: "0644",
        key: { kind: "file", path: `${TLS}/jwks.key`, owner: "root", group: "root", mode: "0600" },
        renewBeforeSeconds: 7 * 86400,
        notify: reload,
      }),
      template({
        name: "nginx-jwks: candidate server block",
        src: "jwks.conf.hbs",
        dest: CANDIDATE,
        mode: "0644",
        vars: view,
      }),
      template({
        name: "nginx-jwks: candidate test config",
        src: "candidate-test.conf.hbs",
        dest: `${CANDIDATE_DIR}/nginx-test.conf`,
        mode: "0644",
        vars: { candidate: CANDIDATE },
      }),
      command({
        name: "nginx-jwks: nginx -t accepts the candidate",
        argv: ["nginx", "-t", "-q", "-c", `${CANDIDATE_DIR}/nginx-test.conf`],
        changedWhen: () => false,
      }),
      template({
        name: "nginx-jwks: install the checked server block",
        src: "jwks.conf.hbs",
        dest: SITE,
        mode: "0644",
        vars: view,
        notify: reload,
      }),
      file({
        path: "/etc/nginx/sites-enabled/omens-jwks.conf",
        state: "link",
        src: SITE,
        notify: reload,
      }),
      systemd({ unit: "nginx", state: "started", enabled: true }),
      jwksHealth(vars),
    ];
  },
});

/** The view jwks.conf.hbs renders. */
export function jwksConfView(vars: Vars): Record<string, unknown> {
  return {
    port: vars.jwksPort,
    serverNames: vars.jwksDnsNames.join(" "),
    certFile: `${TLS}/jwks.crt`,
    keyFile: `${TLS}/jwks.key`,
    bundlePort: vars.spireBundleEndpointPort,
  };
}

/** The keys come back over TLS that verifies against the step-ca root, under the served name. */
function jwksHealth(vars: Vars): ReturnType<typeof healthGate> {
  const name = vars.jwksDnsNames[0] ?? "localhost";
  const probe = `curl -sf --cacert ${TLS}/step-root.crt --resolve ${quote(`${name}:${vars.jwksPort}:127.0.0.1`)} ${quote(`https://${name}:${vars.jwksPort}/keys`)} | grep -q '"keys"'`;
  return healthGate("nginx-jwks: serves the JWKS over TLS", probe, 30, "nginx");
}
