import { describe, expect, it } from "vitest";
import { createRuntime } from "../../gpu-backend/engine/kernels/runtime.js";
import onnxProto from "onnx-proto";
import { A, GraphBuilder } from "../../gpu-backend/engine/onnx/graph.js";

const { onnx } = onnxProto;

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

describe.each(["node", "web"] as const)("GraphBuilder.loop (%s backend)", (backend) => {
  it("threads values through its iterations, their shapes changing, reading values of the enclosing graph", async () => {
    // Iteration k appends x[k] · ten (ten = 0 · max(x) + 10, computed before the loop) to a growing list and adds
    // it to a running sum: after n = len(x) iterations the list is 10 · x and the sum its total.
    const g = new GraphBuilder("loopy");
    const x = g.input("x", ["n"]);
    const ten = g.op("Add", [g.op("Mul", [g.op("ReduceMax", [x], { keepdims: A.i(0) }), g.f32(0)]), g.f32(10)]);
    const n = g.op("Squeeze", [g.op("Shape", [x])]);
    const [list, sum] = g.loop(n, [g.op("Slice", [x, g.i64([0]), g.i64([0])]), g.f32(0)], (k, [soFar, total]) => {
      const item = g.op("Mul", [g.op("Gather", [x, g.op("Unsqueeze", [k, g.i64([0])])]), ten]); // [1]
      return [g.op("Concat", [soFar!, item], { axis: A.i(0) }), g.op("Add", [total!, g.op("Squeeze", [item])])];
    });
    g.output(list!, "list", ["n"]);
    g.output(sum!, "sum", []);
    const session = await (await createRuntime({ backend, threads: 1 })).createSession(g.build());
    try {
      const out = await session.run({ x: { data: Float32Array.from([1, 2, 3, -1]), dims: [4] } });
      expect([...out.list!]).toEqual([10, 20, 30, -10]);
      expect([...out.sum!]).toEqual([50]);
    } finally {
      await session.release();
    }
  });

  it("refuses a body that returns a different number of values than it carries", () => {
    const g = new GraphBuilder("bad");
    const x = g.input("x", [1]);
    expect(() => g.loop(g.i64([1]), [x], () => [x, x])).toThrow(/as many values/);
  });
});

describe("GraphBuilder.ifElse", () => {
  it("refuses branches with different numbers of outputs", () => {
    const g = new GraphBuilder("bad");
    const x = g.input("x", [1]);
    expect(() => g.ifElse(g.op("Greater", [x, g.f32(0)]), () => [x], () => [x, x])).toThrow(/as many outputs/);
  });
});

describe.each(["node", "web"] as const)("GraphBuilder outputs (%s backend)", (backend) => {
  it("names an output by renaming its producer, even one other nodes and a branch read; copies only where it must", async () => {
    const g = new GraphBuilder("outputs");
    const x = g.input("x", [3]);
    const doubled = g.op("Mul", [x, g.f32(2)]);
    const plusOne = g.op("Add", [doubled, g.f32(1)]);
    const [branch] = g.ifElse(g.op("Greater", [g.op("ReduceSum", [x], {}), g.f32(0)]), () => [g.op("Neg", [doubled])], () => [doubled]);
    g.output(doubled, "doubled", [3]); // read by Add and by the branch
    g.output(plusOne, "plus_one", [3]);
    g.output(plusOne, "plus_one_again", [3]); // one value, two names: the first is a copy of the second
    g.output(branch!, "branch", [3]);
    g.output(x, "x_back", [3]); // a graph input has no producer to rename
    const bytes = g.build();
    const identities = onnx.ModelProto.decode(bytes).graph!.node!.filter((n) => n.opType === "Identity").map((n) => n.output![0]);
    expect(identities.sort()).toEqual(["plus_one", "x_back"]);
    const session = await (await createRuntime({ backend, threads: 1 })).createSession(bytes);
    try {
      const out = await session.run({ x: { data: Float32Array.from([1, 2, 3]), dims: [3] } });
      expect(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v]]))).toEqual({
        doubled: [2, 4, 6],
        plus_one: [3, 5, 7],
        plus_one_again: [3, 5, 7],
        branch: [-2, -4, -6],
        x_back: [1, 2, 3],
      });
    } finally {
      await session.release();
    }
  });
});
