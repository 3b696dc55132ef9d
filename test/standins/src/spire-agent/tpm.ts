// Agent side of tpm_devid attestation, with tpm2-tools on the TCTI from TPM2TOOLS_TCTI (or
// tpm_device_path). The DevID key is loaded the way SPIRE's plugin does it: an owner-hierarchy
// storage primary from the fixed ECC SRK template, then the blobs loaded under it. The blobs are
// stored bare (TPMT_PUBLIC, private buffer without its size); tpm2_load wants TPM2B files, so the
// 2-byte sizes are put back in front first.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TpmDevidConf {
  devid_cert_path: string;
  devid_priv_path: string;
  devid_pub_path: string;
  tpm_device_path?: string;
  devid_password?: string;
  owner_hierarchy_password?: string;
  endorsement_hierarchy_password?: string;
}

const SRK_ATTRIBUTES =
  "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt";
const EK_CERT_INDEX = "0x01c00002";

function tpm2Size(buf: Buffer): Buffer {
  const size = Buffer.alloc(2);
  size.writeUInt16BE(buf.length);
  return Buffer.concat([size, buf]);
}

/** The length of the DER value starting at `buf` (an NV index may be padded after it). */
function derLength(buf: Buffer): number {
  if (buf[0] !== 0x30) throw new Error(`NV ${EK_CERT_INDEX} does not hold a DER certificate`);
  const first = buf[1]!;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + buf[2 + i]!;
  return 2 + n + len;
}

/** A TPM session over tpm2-tools, working in a private temporary folder. */
export class DevidTpm {
  private dir = mkdtempSync(join(tmpdir(), "spire-agent-tpm-"));
  private env: NodeJS.ProcessEnv;

  constructor(readonly conf: TpmDevidConf) {
    const tcti = conf.tpm_device_path
      ? conf.tpm_device_path.startsWith("/dev/")
        ? `device:${conf.tpm_device_path}`
        : `swtpm:path=${conf.tpm_device_path}`
      : process.env.TPM2TOOLS_TCTI;
    this.env = { ...process.env, ...(tcti ? { TPM2TOOLS_TCTI: tcti } : {}) };
  }

  private file(name: string) {
    return join(this.dir, name);
  }

  private tool(cmd: string, args: string[]): Buffer {
    try {
      return execFileSync(cmd, args, { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(`${cmd} failed: ${err.stderr?.toString().trim() || err.message}`);
    }
  }

  private flushTransient() {
    this.tool("tpm2_flushcontext", ["-t"]);
  }

  private auth(flag: string, pw: string | undefined): string[] {
    return pw ? [flag, pw] : [];
  }

  /** Reads the RSA EK certificate (DER) from NV 0x01c00002. */
  ekCertificate(): Buffer {
    this.tool("tpm2_nvread", [
      EK_CERT_INDEX,
      "-C",
      "o",
      "-o",
      this.file("ek.der"),
      ...this.auth("-P", this.conf.owner_hierarchy_password),
    ]);
    const raw = readFileSync(this.file("ek.der"));
    return raw.subarray(0, derLength(raw));
  }

  /** The bare TPMT_PUBLIC of the DevID key. */
  devidPublic(): Buffer {
    return readFileSync(this.conf.devid_pub_path);
  }

  /** Creates the SRK and the EK, loads the DevID blobs; leaves saved contexts in the folder. */
  load(): void {
    this.flushTransient();
    writeFileSync(this.file("devid.pub"), tpm2Size(readFileSync(this.conf.devid_pub_path)));
    writeFileSync(this.file("devid.priv"), tpm2Size(readFileSync(this.conf.devid_priv_path)));
    this.tool("tpm2_createprimary", [
      "-C",
      "o",
      "-g",
      "sha256",
      "-G",
      "ecc256:aes128cfb",
      "-a",
      SRK_ATTRIBUTES,
      "-c",
      this.file("srk.ctx"),
      ...this.auth("-P", this.conf.owner_hierarchy_password),
    ]);
    this.tool("tpm2_load", [
      "-C",
      this.file("srk.ctx"),
      "-u",
      this.file("devid.pub"),
      "-r",
      this.file("devid.priv"),
      "-c",
      this.file("devid.ctx"),
    ]);
    this.flushTransient();
    this.tool("tpm2_createek", [
      "-c",
      this.file("ek.ctx"),
      "-G",
      "rsa",
      "-u",
      this.file("ek.pub"),
      ...this.auth("-P", this.conf.endorsement_hierarchy_password),
      ...this.auth("-w", this.conf.owner_hierarchy_password),
    ]);
    this.flushTransient();
  }

  /** Signs `data` with the DevID key: a TPMT_SIGNATURE (ECDSA, SHA-256). */
  sign(data: Buffer): Buffer {
    writeFileSync(this.file("nonce"), data);
    this.tool("tpm2_sign", [
      "-c",
      this.file("devid.ctx"),
      "-g",
      "sha256",
      "-o",
      this.file("sig"),
      ...this.auth("-p", this.conf.devid_password),
      this.file("nonce"),
    ]);
    this.flushTransient();
    return readFileSync(this.file("sig"));
  }

  /** tpm2_activatecredential with the EK (policy secret on the endorsement hierarchy). */
  activate(credential: Buffer): Buffer {
    writeFileSync(this.file("cred"), credential);
    const session = this.file("session.ctx");
    this.tool("tpm2_startauthsession", ["--policy-session", "-S", session]);
    try {
      this.tool("tpm2_policysecret", [
        "-S",
        session,
        "-c",
        "e",
        ...(this.conf.endorsement_hierarchy_password
          ? [this.conf.endorsement_hierarchy_password]
          : []),
      ]);
      this.tool("tpm2_activatecredential", [
        "-c",
        this.file("devid.ctx"),
        "-C",
        this.file("ek.ctx"),
        "-i",
        this.file("cred"),
        "-o",
        this.file("secret"),
        ...this.auth("-p", this.conf.devid_password),
        "-P",
        `session:${session}`,
      ]);
    } finally {
      try {
        this.tool("tpm2_flushcontext", [session]);
      } catch {
        // Already gone with the failed command.
      }
      this.flushTransient();
    }
    return readFileSync(this.file("secret"));
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
