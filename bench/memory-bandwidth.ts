import * as ort from "onnxruntime-node";
import { A, GraphBuilder } from "../gpu-backend/engine/onnx/graph.js";

/**
 * Read bandwidth of this machine as onnxruntime can use it: ReduceSum over a 512 MiB constant, on `threads`
 * threads (far larger than any cache, so every byte comes from memory). Best of several runs.
 */
export async function measureReadBandwidth(threads: number): Promise<number> {
  const n = 128 * 1024 * 1024;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i += 1024) data[i] = 1;
  const g = new GraphBuilder("bandwidth");
  const dummy = g.input("x", [1]);
  const sum = g.op("ReduceSum", [g.weight("w", data, [threads * 64, n / (threads * 64)]), g.i64([1])], { keepdims: A.i(0) });
  g.output(g.op("Add", [g.op("ReduceSum", [sum], { keepdims: A.i(0) }), dummy]), "y", [1]);
  const session = await ort.InferenceSession.create(g.build(), {
    intraOpNumThreads: threads,
    graphOptimizationLevel: "disabled", // keep the reduction at run time: no constant folding
  });
  const feeds = { x: new ort.Tensor("float32", new Float32Array(1), [1]) };
  let best = Infinity;
  for (let i = 0; i < 8; i++) {
    const t = performance.now();
    await session.run(feeds);
    best = Math.min(best, performance.now() - t);
  }
  await session.release();
  return (n * 4) / (best / 1000) / 1e9;
}
