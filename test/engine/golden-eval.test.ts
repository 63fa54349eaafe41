import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const MODEL = "test/fixtures/golden/tiny-v3";

/** The eval CLI exactly as operators run it, against the independent PyTorch reference's outputs. */
describe("engine:eval against the golden reference", () => {
  const cases = [
    { backend: "node", weights: null, golden: "golden.json" },
    { backend: "web", weights: null, golden: "golden.json" },
    { backend: "node", weights: "model.bf16.safetensors", golden: "golden.bf16.json" },
    { backend: "web", weights: "model.bf16.safetensors", golden: "golden.bf16.json" },
  ];
  it.each(cases)("$backend backend, weights $weights", async ({ backend, weights, golden }) => {
    const args = ["run", "-s", "engine:eval", "--", "--model", MODEL, "--golden", `${MODEL}/${golden}`, "--backend", backend];
    if (weights) args.push("--weights", weights);
    const { stdout } = await run("npm", args, { maxBuffer: 1 << 20 });
    const report = JSON.parse(stdout);
    expect(report.passed).toBe(true);
    expect(report.max_rel_diff).toBeLessThanOrEqual(1e-4);
    expect(report.argmax_agree).toBe(1);
    expect(report.greedy_agree).toBe(1);
    expect(report.routing_agree).toBe(1);
  });

  it("exits non-zero when the engine does not match", async () => {
    // The BF16 weights against the F32 reference differ by far more than the tolerance.
    const err = await run("npm", ["run", "-s", "engine:eval", "--", "--model", MODEL, "--weights", "model.bf16.safetensors", "--golden", `${MODEL}/golden.json`, "--tolerance", "1e-6"]).catch((e) => e);
    expect(err.code).toBe(1);
    expect(JSON.parse(err.stdout).passed).toBe(false);
  });
});
