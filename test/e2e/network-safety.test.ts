import { execFileSync } from "node:child_process";
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { labNet, labVeth, unusedLabAddress } from "../helpers/conn.js";

/** Tries a TCP connection; resolves with how it ended and how long that took. */
function tryTcp(address: string, port: number, limitMs: number) {
  const started = Date.now();
  return new Promise<{ outcome: string; ms: number }>((done) => {
    const socket = connect({ host: address, port });
    const finish = (outcome: string) => {
      socket.destroy();
      done({ outcome, ms: Date.now() - started });
    };
    socket.setTimeout(limitMs, () => finish("timeout"));
    socket.once("connect", () => finish("connected"));
    socket.once("error", (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
  });
}

describe("nothing sent to a lab address leaves the machine", () => {
  it("routes an unused lab address to the lab veth, never through a gateway", () => {
    const route = execFileSync("ip", ["-4", "route", "get", unusedLabAddress()], {
      encoding: "utf8",
    });
    expect(route).toContain(`dev ${labVeth()}`);
    expect(route).not.toMatch(/\bvia\b/);
    expect(route).toContain(`src ${labNet()}.1`);
  });

  it("keeps the unreachable guard route under the veth's connected route", () => {
    const routes = execFileSync(
      "ip",
      ["-4", "route", "show", `${labNet()}.0/24`, "table", "main"],
      {
        encoding: "utf8",
      },
    );
    expect(routes).toMatch(
      new RegExp(`^unreachable ${labNet().replace(/\./g, "\\.")}\\.0/24`, "m"),
    );
    expect(routes).toMatch(new RegExp(`dev ${labVeth()} .*scope link`));
  });

  it("fails a TCP connection to an unused lab address locally", async () => {
    const { outcome, ms } = await tryTcp(unusedLabAddress(), 22, 8000);
    // No host answers ARP on the lab bridge: the kernel gives up (EHOSTUNREACH) or nothing
    // comes back at all. Anything else, above all a connection, means the packet went elsewhere.
    expect(["EHOSTUNREACH", "timeout"]).toContain(outcome);
    expect(ms).toBeLessThan(9000);
    // The kernel asked for the address on the lab veth only, and nobody answered.
    const neighbour = execFileSync("ip", ["neigh", "show", unusedLabAddress()], {
      encoding: "utf8",
    });
    expect(neighbour).toMatch(new RegExp(`dev ${labVeth()} .*(FAILED|INCOMPLETE)`));
  });
});
