// Who is calling the Workload API? Node has no SO_PEERCRED, so the agent finds the peer the long
// way: the inode of its own end of the connection (readlink /proc/self/fd/<fd>), the peer's
// inode from the kernel's unix socket table (`ss -xnaH`, sock_diag), the process holding that
// inode (a scan of /proc/<pid>/fd), and that process's real uid and gid (/proc/<pid>/status).
// Seeing other users' /proc/<pid>/fd needs root, which is how the agent runs on the hosts.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { Socket } from "node:net";
import type { Selector } from "../spire/shared.js";

export interface Peer {
  pid: number;
  uid: number;
  gid: number;
}

function inodeOf(link: string): number | undefined {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}

/** The peer socket inode of our socket `inode`, from ss's table. */
function peerInode(inode: number): number {
  const table = execFileSync("ss", ["-xnaH"], { encoding: "utf8" });
  for (const line of table.split("\n")) {
    const cols = line.trim().split(/\s+/);
    // Netid State Recv-Q Send-Q Local-Address Local-Port(inode) Peer-Address Peer-Port(inode)
    if (cols.length >= 8 && Number(cols[5]) === inode) return Number(cols[7]);
  }
  throw new Error(`socket inode ${inode} is not in the unix socket table`);
}

function processHolding(inode: number): number {
  const want = `socket:[${inode}]`;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${name}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${name}/fd/${fd}`) === want) return Number(name);
      } catch {
        // The descriptor closed while we looked.
      }
    }
  }
  throw new Error(`no process holds the peer socket ${inode} (or it is not visible to this agent)`);
}

/** The calling process of a Workload API connection. */
export function peerOf(socket: Socket): Peer {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) throw new Error("cannot get the connection's file descriptor");
  const own = inodeOf(readlinkSync(`/proc/self/fd/${fd}`));
  if (own === undefined) throw new Error("the connection is not a socket");
  const pid = processHolding(peerInode(own));
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1]);
  return { pid, uid: field("Uid"), gid: field("Gid") };
}

function nameOf(file: string, id: number): string | undefined {
  try {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const cols = line.split(":");
      if (Number(cols[2]) === id && cols[0]) return cols[0];
    }
  } catch {
    // No such database: no name selector.
  }
  return undefined;
}

/** The unix workload attestor's selectors for a peer. */
export function unixSelectors(peer: Peer): Selector[] {
  const user = nameOf("/etc/passwd", peer.uid);
  const group = nameOf("/etc/group", peer.gid);
  return [
    { type: "unix", value: `uid:${peer.uid}` },
    ...(user ? [{ type: "unix", value: `user:${user}` }] : []),
    { type: "unix", value: `gid:${peer.gid}` },
    ...(group ? [{ type: "unix", value: `group:${group}` }] : []),
  ];
}
