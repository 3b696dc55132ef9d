// The benchmark fleet: N inventory hosts, all the same sshd, each owning one root folder.
// Both engines get an inventory for the same hosts, the same resets and the same end-state check.
import { createHash } from "node:crypto";
import { lstatSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { Sshd } from "./sshd.js";

/** One benchmark host. */
export interface BenchHost {
  name: string;
  root: string;
  role: string;
  index: number;
  weight: number;
}

const NAMED: Omit<BenchHost, "root">[] = [
  { name: "spire", role: "identity", index: 0, weight: 3 },
  { name: "auth", role: "authn", index: 1, weight: 2 },
  { name: "ca", role: "pki", index: 2, weight: 1 },
];
const ROLES = ["identity", "authn", "pki"];

/** The first three hosts are the workload's named ones; more are numbered nodes. */
export function fleet(count: number, rootBase: string): BenchHost[] {
  return Array.from({ length: count }, (_, i) => {
    const named = NAMED[i] ?? {
      name: `node${String(i + 1).padStart(3, "0")}`,
      role: ROLES[i % 3] as string,
      index: i,
      weight: 1,
    };
    return { ...named, root: join(rootBase, named.name) };
  });
}

/** Deletes every host's root, so the next run starts from nothing. */
export function resetRoots(hosts: BenchHost[]): void {
  for (const host of hosts) {
    if (!/^\/tmp\/./.test(host.root)) throw new Error(`refusing to delete ${host.root}`);
    rmSync(host.root, { recursive: true, force: true });
  }
}

/** Writes the Ansible inventory: one ControlMaster per host, as separate machines would get. */
export function ansibleInventory(file: string, hosts: BenchHost[], sshd: Sshd): void {
  const entries = hosts.map((h) => [
    h.name,
    {
      bench_root: h.root,
      ansible_control_path: `%(directory)s/${h.name}-%%C`,
      omens_role: h.role,
      omens_index: h.index,
      omens_weight: h.weight,
    },
  ]);
  const inventory = {
    all: {
      vars: {
        ansible_host: "127.0.0.1",
        ansible_port: sshd.port,
        ansible_user: "root",
        ansible_ssh_private_key_file: sshd.key,
        ansible_python_interpreter: "/usr/bin/python3",
        ansible_ssh_common_args: `-o UserKnownHostsFile=${sshd.knownHosts} -o StrictHostKeyChecking=yes -o LogLevel=ERROR`,
      },
      children: { bench: { hosts: Object.fromEntries(entries) } },
    },
  };
  writeFileSync(file, stringify(inventory));
}

/** Writes the Omens inventory for the same hosts; host keys are checked against known_hosts. */
export function omensInventory(file: string, hosts: BenchHost[], sshd: Sshd): void {
  const entries = hosts.map((h) => [
    h.name,
    { vars: { benchRoot: h.root, role: h.role, index: h.index, weight: h.weight } },
  ]);
  const inventory = {
    all: {
      address: "127.0.0.1",
      port: sshd.port,
      user: "root",
      key: sshd.key,
      knownHosts: sshd.knownHosts,
      connectTimeout: 30,
      children: { bench: { hosts: Object.fromEntries(entries) } },
    },
  };
  writeFileSync(file, stringify(inventory));
}

// Random or time-stamped by design: compared by type, mode and size only.
const UNHASHED = new Set(["var/lib/omens/secret.bin", "var/lib/omens/etc-snapshot.tar"]);

/** Every path below a root with its type, mode, size and hash (link targets root-relative). */
export function manifest(root: string): string[] {
  const lines: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      lines.push(describe(root, path));
      if (lstatSync(join(root, path)).isDirectory()) walk(path);
    }
  };
  walk("");
  return lines.sort();
}

function describe(root: string, path: string): string {
  const full = join(root, path);
  const info = lstatSync(full);
  const mode = (info.mode & 0o7777).toString(8);
  if (info.isSymbolicLink()) return `${path}\tlink\t${readlinkSync(full).replace(root, "<root>")}`;
  if (info.isDirectory()) return `${path}\tdir\t${mode}`;
  const hash = UNHASHED.has(path)
    ? "-"
    : createHash("sha256").update(readFileSync(full)).digest("hex").slice(0, 16);
  return `${path}\tfile\t${mode}\t${info.size}\t${hash}`;
}
