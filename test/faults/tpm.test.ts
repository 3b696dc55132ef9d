import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lab, labInventory, omensPlay, results } from "../helpers/lab.js";
import { labTool } from "../helpers/faults.js";

// Fault: a host's TPM stops answering (its swtpm stopped with lab-up.sh tpm-stop). TPM tasks
// fail on that host with the TCTI in the message; the other hosts' TPM tasks pass.
const TCTI = "swtpm:host=127.0.0.1,port=2321";

describe("fault: the TPM stops answering", () => {
  beforeAll(() => labTool("tpm-stop", "ca"));
  afterAll(() => labTool("tpm-start", "ca"));

  it("tpmInfo and the EK certificate read fail with the TCTI in the message", async () => {
    const run = await omensPlay(["test/fixtures/faults/tpm.ts", "-i", labInventory(), "--json"], {
      OMENS_TCTI: TCTI,
      OMENS_EK_CA: lab().tpmCa.bundle,
    });
    const [info, ek] = results(run, "ca");
    expect(info).toMatchObject({ task: "tpm info", status: "failed" });
    expect(info?.error).toContain(`the TPM does not answer through TCTI "${TCTI}"`);
    expect(info?.error).toContain("Connection refused");
    expect(ek).toMatchObject({ task: "EK certificate", status: "failed" });
    expect(ek?.error).toContain(`(read with: TPM2TOOLS_TCTI=${TCTI} tpm2_nvread`);
  });

  it("the tpm-validate role fails on that host only, naming the TCTI; exit code 2", async () => {
    const run = await omensPlay([
      "test/fixtures/conn/tpm-validate.ts",
      "-i",
      labInventory(),
      "--json",
    ]);
    expect(run.code).toBe(2);
    expect(run.recap.ca).toMatchObject({ failed: 1, ok: 0 });
    expect(results(run, "ca")[0]?.error).toContain(`TCTI "${TCTI}"`);
    for (const h of ["spire", "auth"]) expect(run.recap[h]).toMatchObject({ ok: 2, failed: 0 });
  });

  it("control: once the TPM is started again, the role passes on that host", async () => {
    labTool("tpm-start", "ca");
    const run = await omensPlay([
      "test/fixtures/conn/tpm-validate.ts",
      "-i",
      labInventory(),
      "--json",
    ]);
    expect(run.code, run.stdout).toBe(0);
    expect(run.recap.ca).toMatchObject({ ok: 2, failed: 0 });
  });
});
