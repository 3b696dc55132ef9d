import { describe, expect, it } from "vitest";
import { parseShow } from "../../engine/modules/systemd.js";

const show = (dropIns: string, onDisk: string, need = "no") =>
  [
    "LoadState=loaded",
    "ActiveState=active",
    "UnitFileState=enabled",
    `NeedDaemonReload=${need}`,
    `DropInPaths=${dropIns}`,
    `DropInsOnDisk=${onDisk}`,
  ].join("\n");

const HARDENING = "/etc/systemd/system/spire-agent.service.d/50-hardening.conf";

describe("systemd unit facts", () => {
  it("needs a reload for a drop-in written after systemd last loaded the unit", () => {
    expect(parseShow(show("", `${HARDENING} `), "spire-agent").needDaemonReload).toBe(true);
  });

  it("needs a reload for a drop-in removed since", () => {
    expect(parseShow(show(HARDENING, ""), "spire-agent").needDaemonReload).toBe(true);
  });

  it("needs none when the loaded drop-ins are the ones on disk", () => {
    const facts = parseShow(show(HARDENING, `${HARDENING} `), "spire-agent.service");
    expect(facts).toEqual({
      loadState: "loaded",
      activeState: "active",
      unitFileState: "enabled",
      needDaemonReload: false,
    });
  });

  it("ignores drop-ins of other folders (service.d, vendor type folders)", () => {
    const shared = "/usr/lib/systemd/system/service.d/10-timeout-abort.conf";
    expect(parseShow(show(shared, ""), "spire-agent").needDaemonReload).toBe(false);
  });

  it("keeps systemd's own NeedDaemonReload", () => {
    expect(parseShow(show("", "", "yes"), "ssh").needDaemonReload).toBe(true);
  });
});
