// Builds the lab stand-in binaries into release tarballs shaped like the real ones.
//
//   npm run standins:build            bundle + pack into test/standins/dist/ (+ SHA256SUMS)
//   npm run standins:build -- --pin   also write the sha256 values into inventory/lab.yaml
//
// Each binary is one esbuild bundle (CommonJS, target node18, shebang) of
// test/standins/src/<binary>/main.ts. A binary whose main.ts does not exist yet is skipped, and
// a tarball none of whose binaries exist is not written. Tarballs are reproducible: entries
// sorted, mtime 0, owner/group 0, fixed modes, `gzip -n`.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseDocument } from "yaml";

const HERE = import.meta.dirname;
const ROOT = resolve(HERE, "../..");
const DIST = join(HERE, "dist");
const LAB_INVENTORY = join(ROOT, "inventory/lab.yaml");
/** What the inventory's release URLs point at (labInventory() rewrites the subnet). */
const ARTIFACT_BASE = "http://10.77.0.1:8099";

/** One release tarball: its file name, inventory variable and binaries (path inside it). */
interface Release {
  tarball: string;
  inventoryVar: string;
  binaries: Record<string, string>;
}

export const RELEASES: Release[] = [
  {
    tarball: "spire-1.14.1-linux-amd64-musl.tar.gz",
    inventoryVar: "spireRelease",
    binaries: {
      "spire-server": "spire-1.14.1/bin/spire-server",
      "spire-agent": "spire-1.14.1/bin/spire-agent",
    },
  },
  {
    tarball: "step-ca_linux_0.28.1_amd64.tar.gz",
    inventoryVar: "stepCaRelease",
    binaries: { "step-ca": "step-ca_0.28.1/bin/step-ca" },
  },
  {
    tarball: "step_linux_0.28.1_amd64.tar.gz",
    inventoryVar: "stepRelease",
    binaries: { step: "step_0.28.1/bin/step" },
  },
  {
    tarball: "bao_2.5.0_linux_amd64.tar.gz",
    inventoryVar: "openbaoRelease",
    binaries: { bao: "bao" },
  },
];

// Node 18 (Debian 12) has no global `crypto`/`CryptoKey`, which jose and @peculiar/x509
// expect; the bundle installs node:crypto's WebCrypto before any module runs.
const BANNER = [
  "#!/usr/bin/env node",
  "/* Omens lab stand-in: a test double, not the real binary. See test/standins/README.md. */",
  'if (!globalThis.crypto) globalThis.crypto = require("node:crypto").webcrypto;',
  'if (!globalThis.CryptoKey) globalThis.CryptoKey = require("node:crypto").webcrypto.CryptoKey;',
].join("\n");

/** Bundles one binary; returns the JS text, or undefined when its main.ts does not exist. */
async function bundle(binary: string): Promise<Buffer | undefined> {
  const entry = join(HERE, "src", binary, "main.ts");
  if (!existsSync(entry)) return undefined;
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    write: false,
    banner: { js: BANNER },
    legalComments: "none",
    logLevel: "warning",
    absWorkingDir: ROOT,
  });
  return Buffer.from(result.outputFiles[0]!.contents);
}

/** A reproducible .tar.gz of `files` (path inside the archive -> content, all mode 0755). */
function packTarball(files: Map<string, Buffer>): Buffer {
  const stage = mkdtempSync(join(tmpdir(), "omens-standins-"));
  try {
    const tops = new Set<string>();
    for (const [path, content] of files) {
      const target = join(stage, path);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, content);
      chmodSync(target, 0o755);
      tops.add(path.split("/")[0]!);
    }
    for (let dir of [...files.keys()].map(dirname)) {
      for (; dir !== "."; dir = dirname(dir)) chmodSync(join(stage, dir), 0o755);
    }
    const tar = execFileSync(
      "tar",
      [
        "--sort=name",
        "--mtime=@0",
        "--owner=0",
        "--group=0",
        "--numeric-owner",
        "--format=gnu",
        "-C",
        stage,
        "-cf",
        "-",
        ...[...tops].sort(),
      ],
      { maxBuffer: 1 << 30 },
    );
    return execFileSync("gzip", ["-n", "-9"], { input: tar, maxBuffer: 1 << 30 });
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** Writes a file atomically (temp file in the same directory, then rename). */
function writeAtomic(path: string, content: string | Buffer) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Sets all.vars.<var> = { url, sha256 } in inventory/lab.yaml, keeping its comments. */
function pinInventory(built: { release: Release; sha: string }[]) {
  const doc = parseDocument(readFileSync(LAB_INVENTORY, "utf8"));
  if (doc.errors.length) throw doc.errors[0]!;
  for (const { release, sha } of built) {
    doc.setIn(["all", "vars", release.inventoryVar], {
      url: `${ARTIFACT_BASE}/${release.tarball}`,
      sha256: sha,
    });
  }
  writeAtomic(LAB_INVENTORY, doc.toString({ lineWidth: 100 }));
}

async function main() {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== "--pin");
  if (unknown.length) throw new Error(`unknown argument(s): ${unknown.join(" ")} (known: --pin)`);
  mkdirSync(DIST, { recursive: true });
  const built: { release: Release; sha: string }[] = [];
  for (const release of RELEASES) {
    const files = new Map<string, Buffer>();
    const missing: string[] = [];
    for (const [binary, path] of Object.entries(release.binaries)) {
      const js = await bundle(binary);
      if (js) files.set(path, js);
      else missing.push(binary);
    }
    if (!files.size) {
      rmSync(join(DIST, release.tarball), { force: true });
      console.log(`skip  ${release.tarball}: no main.ts for ${missing.join(", ")}`);
      continue;
    }
    const tarball = packTarball(files);
    writeAtomic(join(DIST, release.tarball), tarball);
    const sha = sha256(tarball);
    built.push({ release, sha });
    const note = missing.length ? ` (without ${missing.join(", ")}: no main.ts yet)` : "";
    console.log(`built ${release.tarball} ${sha.slice(0, 12)} ${tarball.length} B${note}`);
  }
  const sums = built
    .map(({ release, sha }) => `${sha}  ${release.tarball}\n`)
    .sort((a, b) => a.slice(66).localeCompare(b.slice(66)))
    .join("");
  writeAtomic(join(DIST, "SHA256SUMS"), sums);
  if (args.includes("--pin")) {
    pinInventory(built);
    console.log(`pinned ${built.length} release(s) in ${LAB_INVENTORY}`);
  }
}

await main();
