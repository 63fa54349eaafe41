import { describe, expect, it } from "vitest";
import { createRuntime } from "../../gpu-backend/engine/kernels/runtime.js";
import { GraphBuilder } from "../../gpu-backend/engine/onnx/graph.js";

/**
 * `y = If(sum(x) >= 0) then x·w + scaled else Reshape(x, [-1, 7])`, where `scaled` (x · 10) is built before the
 * If and the weight `w` (3) inside the then-branch. The else-branch fails for any x whose size is not a multiple
 * of 7, so a run that takes the then-branch with such an x shows the other branch never ran.
 */
function branchyGraph(): Uint8Array {
  const g = new GraphBuilder("branchy");
  const x = g.input("x", ["n"]);
  const scaled = g.op("Mul", [x, g.f32(10)]);
  const cond = g.op("GreaterOrEqual", [g.op("ReduceSum", [x], {}), g.f32(0)]);
  const [y] = g.ifElse(
    cond,
    () => [g.op("Add", [g.op("Mul", [x, g.weight("w", Float32Array.from([3]), [1])]), scaled])],
    () => [g.op("Reshape", [x, g.i64([-1, 7])])],
  );
  g.output(y!, "y", ["n"]);
  return g.build();
}

describe.each(["node", "web"] as const)("GraphBuilder.ifElse (%s backend)", (backend) => {
  it("runs only the branch its condition picks, reading values and weights of the enclosing graph", async () => {
    const session = await (await createRuntime({ backend, threads: 1 })).createSession(branchyGraph());
    try {
      const out = await session.run({ x: { data: Float32Array.from([1, 2, 3, -1]), dims: [4] } });
      expect([...out.y!]).toEqual([13, 26, 39, -13]);
      await expect(session.run({ x: { data: Float32Array.from([1, 2, 3, -9]), dims: [4] } })).rejects.toThrow();
    } finally {
      await session.release();
    }
  });
});

describe("GraphBuilder.ifElse", () => {
  it("refuses branches with different numbers of outputs", () => {
    const g = new GraphBuilder("bad");
    const x = g.input("x", [1]);
    expect(() => g.ifElse(g.op("Greater", [x, g.f32(0)]), () => [x], () => [x, x])).toThrow(/as many outputs/);
  });
});
