// The server CA: an X.509 signing key and a JWT signing key, both P-256, persisted by the
// KeyManager "disk" at keys_path (so a restart keeps the CA), their certificates and public keys
// in the datastore's bundle. A key is replaced once half its lifetime (ca_ttl) has passed; the
// old certificate stays in the bundle until it expires.
import { createPrivateKey, createPublicKey, randomBytes, sign, X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../common/files.js";
import { issueCert, loadKeyPair, newKeyPair, parseCerts, type KeyPair } from "../common/pki.js";
import type { Datastore } from "./datastore.js";

interface KeysFile {
  format: "omens-spire-standin-keys/1";
  x509: { id: string; privatePem: string }[];
  jwt: { kid: string; privatePem: string }[];
}

export interface CaSettings {
  td: string;
  caTtlMs: number;
  subject: string;
  /** keys_path, or undefined for KeyManager "memory". */
  keysPath: string | undefined;
}

/** The signing material in use now. */
export interface Signer {
  key: KeyPair;
  cert: X509Certificate;
}

function spki(pem: string): string {
  return createPublicKey(pem).export({ format: "der", type: "spki" }).toString("base64");
}

export class ServerCa {
  x509!: Signer;
  jwt!: { kid: string; privatePem: string; notAfter: number };
  private keys: KeysFile;

  constructor(
    readonly settings: CaSettings,
    readonly store: Datastore,
  ) {
    const path = settings.keysPath;
    this.keys =
      path && existsSync(path)
        ? (JSON.parse(readFileSync(path, "utf8")) as KeysFile)
        : { format: "omens-spire-standin-keys/1", x509: [], jwt: [] };
    if (this.keys.format !== "omens-spire-standin-keys/1")
      throw new Error(`KeyManager "disk": ${path} was not written by this server`);
  }

  /** Loads the current keys, making new ones when missing or past half their life. */
  async refresh(): Promise<boolean> {
    const now = Date.now();
    let changed = false;
    const prunedX509 = this.store.data.bundle.x509.filter(
      (pem) => new Date(new X509Certificate(pem).validTo).getTime() > now,
    );
    const prunedJwt = this.store.data.bundle.jwt.filter((k) => k.notAfter * 1000 > now);
    if (
      prunedX509.length !== this.store.data.bundle.x509.length ||
      prunedJwt.length !== this.store.data.bundle.jwt.length
    ) {
      this.store.data.bundle.x509 = prunedX509;
      this.store.data.bundle.jwt = prunedJwt;
      changed = true;
    }
    const current = await this.currentX509(now);
    if (current) this.x509 = current;
    else {
      this.x509 = await this.newX509(now);
      changed = true;
    }
    const jwt = this.currentJwt(now);
    if (jwt) this.jwt = jwt;
    else {
      this.jwt = await this.newJwt(now);
      changed = true;
    }
    if (changed) {
      this.saveKeys();
      this.store.update((d) => (d.bundle.sequence += 1));
    }
    return changed;
  }

  private halfLifeLeft(from: number, to: number, now: number) {
    return now < from + (to - from) / 2;
  }

  private async currentX509(now: number): Promise<Signer | undefined> {
    const last = this.keys.x509.at(-1);
    if (!last) return undefined;
    const want = spki(last.privatePem);
    for (const pem of this.store.data.bundle.x509) {
      const cert = new X509Certificate(pem);
      const from = new Date(cert.validFrom).getTime();
      const to = new Date(cert.validTo).getTime();
      const same = cert.publicKey.export({ format: "der", type: "spki" }).toString("base64");
      if (same === want && this.halfLifeLeft(from, to, now))
        return { key: await loadKeyPair(last.privatePem), cert };
    }
    return undefined;
  }

  private async newX509(now: number): Promise<Signer> {
    const key = await newKeyPair();
    const cert = await issueCert({
      subject: this.settings.subject,
      publicKey: key.keys.publicKey,
      signingKey: key.keys.privateKey,
      notBefore: new Date(now - 10_000),
      notAfter: new Date(now + this.settings.caTtlMs),
      ca: true,
      uris: [`spiffe://${this.settings.td}`],
    });
    this.keys.x509.push({ id: `x509-CA-${this.keys.x509.length + 1}`, privatePem: key.privatePem });
    this.keys.x509 = this.keys.x509.slice(-2);
    this.store.data.bundle.x509.push(cert.toString());
    return { key, cert };
  }

  private currentJwt(now: number) {
    const last = this.keys.jwt.at(-1);
    const rec = last && this.store.data.bundle.jwt.find((k) => k.kid === last.kid);
    if (!last || !rec) return undefined;
    const from = rec.notAfter * 1000 - this.settings.caTtlMs;
    if (!this.halfLifeLeft(from, rec.notAfter * 1000, now)) return undefined;
    return { kid: last.kid, privatePem: last.privatePem, notAfter: rec.notAfter };
  }

  private async newJwt(now: number) {
    const key = await newKeyPair();
    const kid = randomBytes(24).toString("base64url");
    const notAfter = Math.floor((now + this.settings.caTtlMs) / 1000);
    this.keys.jwt.push({ kid, privatePem: key.privatePem });
    this.keys.jwt = this.keys.jwt.slice(-2);
    this.store.data.bundle.jwt.push({ kid, publicPem: key.publicPem, notAfter });
    return { kid, privatePem: key.privatePem, notAfter };
  }

  private saveKeys() {
    if (this.settings.keysPath)
      writeFileAtomic(this.settings.keysPath, JSON.stringify(this.keys, null, 2) + "\n");
  }

  /** The X.509 roots of the bundle, PEM. */
  bundlePem(): string {
    return this.store.data.bundle.x509.map((p) => p.trim() + "\n").join("");
  }

  roots(): X509Certificate[] {
    return parseCerts(this.bundlePem());
  }

  /** The bundle as a SPIFFE bundle (JWKS with use x509-svid / jwt-svid). */
  spiffeBundle(refreshHintSeconds: number) {
    const x509 = this.store.data.bundle.x509.map((pem) => {
      const cert = new X509Certificate(pem);
      const jwk = cert.publicKey.export({ format: "jwk" });
      return {
        use: "x509-svid",
        kty: jwk.kty,
        crv: jwk.crv,
        x: jwk.x,
        y: jwk.y,
        x5c: [cert.raw.toString("base64")],
      };
    });
    const jwt = this.store.data.bundle.jwt.map((k) => {
      const jwk = createPublicKey(k.publicPem).export({ format: "jwk" });
      return { use: "jwt-svid", kty: jwk.kty, kid: k.kid, crv: jwk.crv, x: jwk.x, y: jwk.y };
    });
    return {
      keys: [...x509, ...jwt],
      spiffe_refresh_hint: refreshHintSeconds,
      spiffe_sequence: this.store.data.bundle.sequence,
    };
  }

  /** The JWT keys only, as a JWKS (what agents hand to workloads). */
  jwks() {
    return { keys: this.spiffeBundle(0).keys.filter((k) => k.use === "jwt-svid") };
  }

  /** Signs a JWT-SVID (ES256, kid of the current JWT key). */
  signJwt(claims: Record<string, unknown>): string {
    const header = { alg: "ES256", kid: this.jwt.kid, typ: "JWT" };
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const input = `${enc(header)}.${enc(claims)}`;
    const sig = sign("sha256", Buffer.from(input), {
      key: createPrivateKey(this.jwt.privatePem),
      dsaEncoding: "ieee-p1363",
    });
    return `${input}.${sig.toString("base64url")}`;
  }
}
