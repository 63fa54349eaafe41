import { A, type GraphBuilder } from "../onnx/graph.js";

/** Building blocks shared by the engine's graphs. Weights arrive in HF layout `[out, in]`. */

/** `[rows, cols]` → `[cols, rows]`. */
export function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[base + c]!;
  }
  return out;
}

/** Stacks `[out_i, in]` weights along `out` (rows), so one MatMul computes several projections. */
export function stackRows(...ws: Float32Array[]): Float32Array {
  const out = new Float32Array(ws.reduce((a, w) => a + w.length, 0));
  let off = 0;
  for (const w of ws) {
    out.set(w, off);
    off += w.length;
  }
  return out;
}

/**
 * x @ Wᵀ for an HF `[out, in]` weight, taken as it is: onnxruntime pre-packs a constant Gemm operand in either
 * orientation, so the steps run as fast as a MatMul over a transposed copy, and loading skips that copy
 * (29% of the load time of a DeepSeek-V2-Lite-shaped checkpoint; the bench model loads 26% faster).
 */
export function linear(g: GraphBuilder, x: string, name: string, w: Float32Array, outDim: number, inDim: number): string {
  return g.op("Gemm", [x, g.weight(name, w, [outDim, inDim])], { transB: A.i(1) });
}

/** x / sqrt(mean(x², -1) + eps) · w */
export function rmsNorm(g: GraphBuilder, x: string, name: string, w: Float32Array, eps: number): string {
  const ms = g.op("ReduceMean", [g.op("Mul", [x, x])], { axes: A.ints([-1]), keepdims: A.i(1) });
  const inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [ms, g.f32(eps)])])]);
  return g.op("Mul", [g.op("Mul", [x, inv]), g.weight(name, w, [w.length])]);
}

/** gate(x) ‖ up(x) as one MatMul over the stacked weights: `[n, hidden] → [n, 2·inter]`. */
export function gateUpProjection(g: GraphBuilder, x: string, prefix: string, w: { gate: Float32Array; up: Float32Array }, hidden: number, inter: number): string {
  return linear(g, x, `${prefix}.gate_up`, stackRows(w.gate, w.up), 2 * inter, hidden);
}

/** `[n, 2·inter]` rows of gate ‖ up projections → silu(gate) · up, `[n, inter]`. */
export function swigluActivation(g: GraphBuilder, gateUp: string, inter: number): string {
  const [a, u] = g.opN("Split", [gateUp, g.i64([inter, inter])], 2, { axis: A.i(-1) });
  return g.op("Mul", [g.op("Mul", [a!, g.op("Sigmoid", [a!])]), u!]);
}

/** down(silu(gate(x)) · up(x)), with gate and up fused into one MatMul. */
export function swiglu(
  g: GraphBuilder,
  x: string,
  prefix: string,
  w: { gate: Float32Array; up: Float32Array; down: Float32Array },
  hidden: number,
  inter: number,
): string {
  const act = swigluActivation(g, gateUpProjection(g, x, prefix, w, hidden, inter), inter);
  return linear(g, act, `${prefix}.down`, w.down, hidden, inter);
}

/**
 * Rotates adjacent pairs `(x[2i], x[2i+1])` of the last axis by the angle whose cos/sin are given — HF
 * DeepSeek's interleaved layout, kept interleaved (q and k share it, so their dot product is unchanged).
 * `x` is `[..., R]`; `cos`/`sin` broadcast against `[..., R/2, 1]`.
 */
export function ropeInterleaved(g: GraphBuilder, x: string, cos: string, sin: string, pairShape: number[], flatShape: number[]): string {
  const pairs = g.op("Reshape", [x, g.i64(pairShape)]);
  const [x0, x1] = g.opN("Split", [pairs, g.i64([1, 1])], 2, { axis: A.i(-1) });
  const r0 = g.op("Sub", [g.op("Mul", [x0!, cos]), g.op("Mul", [x1!, sin])]);
  const r1 = g.op("Add", [g.op("Mul", [x0!, sin]), g.op("Mul", [x1!, cos])]);
  return g.op("Reshape", [g.op("Concat", [r0, r1], { axis: A.i(-1) }), g.i64(flatShape)]);
}

/**
 * One inverse-CDF draw per row of `probs [n, V]` (unnormalised is fine) with the row's variate `u [n, 1]` in
 * [0, 1): the first token whose running sum reaches u × the row's total, as float32 `[n]` (exact below 2^24).
 * The running sum is taken in two levels, over blocks of `block` tokens and then within the chosen block, so
 * no scan covers the vocabulary (a full-row CumSum cost more than the draw saved). Rounding past the end (u
 * near 1) lands on the last token, as a sequential walk would.
 */
export function inverseCdfDraw(g: GraphBuilder, probs: string, u: string, vocab: number, block = 128): string {
  const nb = Math.ceil(vocab / block);
  const padded = nb * block === vocab ? probs : g.op("Pad", [probs, g.i64([0, 0, 0, nb * block - vocab])]);
  const blocks = g.op("Reshape", [padded, g.i64([-1, nb, block])]);
  const blockSums = g.op("ReduceSum", [blocks, g.i64([2])], { keepdims: A.i(0) }); // [n, nb]
  const before = g.op("CumSum", [blockSums, g.i64([1])], { exclusive: A.i(1) });
  const upTo = g.op("CumSum", [blockSums, g.i64([1])]);
  const target = g.op("Mul", [u, g.op("Slice", [upTo, g.i64([-1]), g.i64([nb]), g.i64([1])])]); // [n, 1]
  /** How many running sums fall short of the target ([n, 1], int64): the index of the one that reaches it. */
  const shortOf = (sums: string, t: string, last: number) =>
    g.op("Cast", [g.op("Min", [g.op("ReduceSum", [g.op("Cast", [g.op("Less", [sums, t])], { to: A.i(1) }), g.i64([1])], { keepdims: A.i(1) }), g.f32(last)])], { to: A.i(7) });
  const b = shortOf(upTo, target, nb - 1);
  const rest = g.op("Sub", [target, g.op("GatherElements", [before, b], { axis: A.i(1) })]);
  const blockIndex = g.op("Expand", [g.op("Unsqueeze", [b, g.i64([2])]), g.op("Concat", [g.op("Shape", [b]), g.i64([block])], { axis: A.i(0) })]); // [n, 1, block]
  const chosen = g.op("Reshape", [g.op("GatherElements", [blocks, blockIndex], { axis: A.i(1) }), g.i64([-1, block])]);
  const j = shortOf(g.op("CumSum", [chosen, g.i64([1])]), rest, block - 1);
  const token = g.op("Min", [g.op("Add", [g.op("Mul", [b, g.i64([block])]), j]), g.i64([vocab - 1])]);
  return g.op("Cast", [g.op("Reshape", [token, g.i64([-1])])], { to: A.i(1) });
}
