import type { Checkpoint } from "../checkpoint.js";
import { cacheWidth, isMoeLayer, type ModelConfig } from "../config.js";
import { A, GraphBuilder } from "../onnx/graph.js";
import { softmaxScale } from "../rope.js";
import { gateUpProjection, inverseCdfDraw, linear, rmsNorm, ropeInterleaved, stackRows, swiglu, swigluActivation, transpose } from "./layers.js";

/**
 * One decoder layer up to (not including) the routed experts, as a single graph, so a step costs one
 * session run per layer and attention group, plus one expert-group run per MoE layer.
 *
 * Inputs (a group of B sequences, each bringing Tq new tokens; T = B·Tq):
 *   x        [T, H]        residual stream entering the layer
 *   cos,sin  [T, R/2]      rotary angles of each new token's position
 *   pool     [N, S·D]      this layer's cached latents (D = kv_lora + R) in blocks of S rows
 *   table    [B, nb]       each sequence's blocks in position order, padded with a zero block to the longest
 *   past_len [B]           how many of its table's rows (P = nb·S) are real for each sequence
 *   shared_table [ns]      leading blocks every sequence has, attended once for the group (absorbed form)
 *                          (`table` and `past_len` then describe what follows them); empty when none
 * The graph gathers `past [B, P, D]` from the pool itself: copying the rows is the one pass over the cache that
 * attention cannot avoid, and onnxruntime's Gather makes it on the pool's threads instead of JavaScript's one
 * (bench model, 32 sequences decoding at 2k positions: 226 → 170 ms a step; no change at 100 positions). Where
 * the group's past rows are more than `attentionPartBytes` a sequence's worth, the absorbed form gathers and
 * attends them a few sequences at a time (see `partByPart`).
 * Outputs:
 *   kv       [T, D]        the new tokens' cache rows: normalised latent ‖ rotated shared rope key
 *   dense layer:  out [T, H]  the residual stream leaving the layer
 *   MoE layer:    base [T, H] residual + shared experts; hn [T, H] expert input; scores [T, E] gate scores
 *
 * Attention takes one of two forms, both in this graph behind an `If`, so one session holds the layer's
 * weights once: `absorbed` (decode, short chunks): kv_b_proj's key part is folded into the query and its value
 * part applied after attention, so keys and values are the cached latents themselves. `expanded` (chunks of
 * `expandedMinTokens`+ tokens a sequence, with no shared blocks): keys and values are decompressed per head, as
 * in the model's own formulation. Both read and write the same cache.
 */
export interface BlockGraphOptions {
  /** Chunks of at least this many tokens a sequence attend in the expanded form. */
  expandedMinTokens: number;
  /** Most bytes of gathered past rows one part of a decode or short-chunk group attends at once. */
  attentionPartBytes: number;
}

export function buildBlockGraph(cfg: ModelConfig, ckpt: Checkpoint, layer: number, opts: BlockGraphOptions): Uint8Array {
  const H = cfg.hidden;
  const nh = cfg.heads;
  const R = cfg.ropeDim;
  const kvl = cfg.kvLoraRank;
  const nope = cfg.nopeDim;
  const vd = cfg.vDim;
  const D = cacheWidth(cfg);
  const p = `model.layers.${layer}`;
  const W = (name: string, shape: number[]) => ckpt.get(`${p}.${name}`, shape);
  const g = new GraphBuilder(`layer${layer}`);

  const x = g.input("x", ["T", H]);
  const cos = g.input("cos", ["T", R / 2]);
  const sin = g.input("sin", ["T", R / 2]);
  const pool = g.input("pool", ["N", "SD"]);
  const table = g.input("table", ["B", "nb"], "int64");
  const pastLen = g.input("past_len", ["B"]);
  const sharedTable = g.input("shared_table", ["ns"], "int64");
  /** The cached rows of the sequences whose block-table rows are given: `[b, P, D]`. */
  const gatherPast = (tableRows: string) => g.op("Reshape", [g.op("Gather", [pool, tableRows], { axis: A.i(0) }), g.i64([0, -1, D])]);

  // Group geometry from the inputs: B sequences × Tq tokens, P = nb·S past rows each.
  const shapeOf = (t: string, i: number) => g.op("Gather", [g.op("Shape", [t]), g.i64([i])], { axis: A.i(0) });
  const B = shapeOf(table, 0);
  const P = g.op("Mul", [shapeOf(table, 1), g.op("Div", [shapeOf(pool, 1), g.i64([D])])]);
  const T = shapeOf(x, 0);
  const Tq = g.op("Div", [T, B]);

  const xn = rmsNorm(g, x, "input_norm", W("input_layernorm.weight", [H]), cfg.rmsEps);

  // Queries: [T, nh·(nope+R)], computed for every token of the group at once.
  const qOut = nh * (nope + R);
  let q: string;
  if (cfg.qLoraRank !== null) {
    const ql = cfg.qLoraRank;
    const qa = linear(g, xn, "q_a", W("self_attn.q_a_proj.weight", [ql, H]), ql, H);
    const qan = rmsNorm(g, qa, "q_a_norm", W("self_attn.q_a_layernorm.weight", [ql]), 1e-6);
    q = linear(g, qan, "q_b", W("self_attn.q_b_proj.weight", [qOut, ql]), qOut, ql);
  } else {
    q = linear(g, xn, "q", W("self_attn.q_proj.weight", [qOut, H]), qOut, H);
  }
  const bTqShape = g.op("Concat", [B, Tq], { axis: A.i(0) });
  const q3 = g.op("Reshape", [q, g.i64([-1, nh, nope + R])]); // [T, nh, nope+R]
  const [qNope, qPe] = g.opN("Split", [q3, g.i64([nope, R])], 2, { axis: A.i(-1) });

  const cosQ = g.op("Reshape", [cos, g.i64([-1, 1, R / 2, 1])]);
  const sinQ = g.op("Reshape", [sin, g.i64([-1, 1, R / 2, 1])]);
  const qPeRot = ropeInterleaved(g, qPe!, cosQ, sinQ, [0, 0, R / 2, 2], [0, 0, R]); // [T, nh, R]
  const scale = g.f32(softmaxScale(cfg));

  // The new tokens' cache rows.
  const kva = linear(g, xn, "kv_a", W("self_attn.kv_a_proj_with_mqa.weight", [kvl + R, H]), kvl + R, H);
  const [c, kpe] = g.opN("Split", [kva, g.i64([kvl, R])], 2, { axis: A.i(-1) });
  const cN = rmsNorm(g, c!, "kv_a_norm", W("self_attn.kv_a_layernorm.weight", [kvl]), 1e-6);
  const cosK = g.op("Unsqueeze", [cos, g.i64([-1])]);
  const sinK = g.op("Unsqueeze", [sin, g.i64([-1])]);
  const kpeRot = ropeInterleaved(g, kpe!, cosK, sinK, [0, R / 2, 2], [0, R]);
  const kvNew = g.op("Concat", [cN, kpeRot], { axis: A.i(-1) }); // [T, D]
  g.output(kvNew, "kv", ["T", D]);

  // Keys are past rows ‖ new rows, one latent per position shared by all heads: [B, P+Tq, D].
  const kvNew3 = g.op("Reshape", [kvNew, g.op("Concat", [bTqShape, g.i64([D])], { axis: A.i(0) })]);

  // Mask: past row n is visible iff n < past_len[b]; new row j is visible to new token i iff j <= i.
  const zero = g.f32(0);
  const one = g.f32(1);
  const pF = g.op("Cast", [P], { to: A.i(1) });
  const tqF = g.op("Cast", [Tq], { to: A.i(1) });
  const pastIdx = g.op("Range", [zero, g.op("Squeeze", [pF]), one]); // [P]
  const pastOk = g.op("Less", [pastIdx, g.op("Reshape", [pastLen, g.i64([-1, 1, 1, 1])])]); // [B,1,1,P]
  const newIdx = g.op("Range", [zero, g.op("Squeeze", [tqF]), one]); // [Tq]
  const newOk = g.op("LessOrEqual", [newIdx, g.op("Unsqueeze", [newIdx, g.i64([1])])]); // [Tq, Tq]
  const fullShape = g.op("Concat", [B, g.i64([1]), Tq, P], { axis: A.i(0) });
  const newShape = g.op("Concat", [B, g.i64([1]), Tq, Tq], { axis: A.i(0) });
  const mask = g.op("Concat", [g.op("Expand", [pastOk, fullShape]), g.op("Expand", [newOk, newShape])], { axis: A.i(-1) }); // [B,1,Tq,P+Tq]
  // Softmax over visible keys of `[B, nh, Tq, P+Tq]` scores: the mask becomes an additive bias once per
  // sequence ([B, 1, Tq, P+Tq]), and a broadcast Add applies it to every head (cheaper than a 3-input Where).
  const maskBias = g.op("Where", [mask, g.f32(0), g.f32(-Infinity)]);
  const attend = (scores4: string) => g.op("Softmax", [g.op("Add", [scores4, maskBias])], { axis: A.i(-1) });
  /** `[B, Tq, nh, w]`-shaped `[T, nh, w]` → `[B, nh, Tq, w]`. */
  const perSequenceHeads = (t: string, w: number) =>
    g.op("Transpose", [g.op("Reshape", [t, g.op("Concat", [bTqShape, g.i64([nh, w])], { axis: A.i(0) })])], { perm: A.ints([0, 2, 1, 3]) });

  // kv_b_proj [nh·(nope+v), kvl] → per head: W_UK [nope, kvl] and W_UV [v, kvl].
  const kvb = W("self_attn.kv_b_proj.weight", [nh * (nope + vd), kvl]);
  const headRows = (h: number) => kvb.subarray(h * (nope + vd) * kvl, (h + 1) * (nope + vd) * kvl);
  const absorbedAttention = (): string[] => {
    // Decode: W_UK is folded into each query and W_UV applied after attention, so keys and values are the
    // cached latents themselves (D per position, shared by all heads).
    const wuk = new Float32Array(nh * nope * kvl);
    const wuvT = new Float32Array(nh * kvl * vd);
    for (let h = 0; h < nh; h++) {
      wuk.set(headRows(h).subarray(0, nope * kvl), h * nope * kvl);
      wuvT.set(transpose(headRows(h).subarray(nope * kvl), vd, kvl), h * kvl * vd);
    }
    // Heads first, every token of the step as rows: nh GEMMs of T rows each.
    const headsFirst = (t: string) => g.op("Transpose", [t], { perm: A.ints([1, 0, 2]) });
    const qAbs = headsFirst(g.op("MatMul", [headsFirst(qNope!), g.weight("w_uk", wuk, [nh, nope, kvl])])); // [T, nh, kvl]
    const qCat = g.op("Mul", [g.op("Concat", [qAbs, qPeRot], { axis: A.i(-1) }), scale]); // [T, nh, D]
    // Per sequence, its heads × new tokens form the rows of one GEMM against its keys: [B, nh·Tq, D].
    const qRows = g.op("Reshape", [perSequenceHeads(qCat, D), g.op("Concat", [B, g.i64([-1, D])], { axis: A.i(0) })]);
    const rowsEach = g.op("Mul", [Tq, g.i64([nh])]);
    // `allowzero`: with no shared blocks, Ps is a real 0 (not "keep this dimension").
    const reshape = (t: string, dims: string[]) => g.op("Reshape", [t, g.op("Concat", dims, { axis: A.i(0) })], { allowzero: A.i(1) });
    /**
     * Attention of `q [b, nh·Tq, D]` over each sequence's `past [b, P, D]` and new rows `kv [b, Tq, D]` under
     * `bias [b, 1, Tq, P+Tq]`, and, when given, over `shared [Ps, D]` rows every sequence has before its past:
     * `[b, nh·Tq, D]`. Past and new keys are multiplied separately and only the small score and output tensors
     * joined: joining the keys would copy every cached latent once per layer (MBs at 32 sequences).
     */
    const attendLatents = (q: string, past: string, kv: string, bias: string, shared: string | null): string => {
      const b = shapeOf(q, 0);
      const againstKeys = (k: string) => g.op("MatMul", [q, g.op("Transpose", [k], { perm: A.ints([0, 2, 1]) })]);
      const parts = [againstKeys(past), againstKeys(kv)];
      let fullBias = bias;
      let Ps = g.i64([0]);
      if (shared) {
        // Shared rows are attended by all the group's queries in one GEMM of B·nh·Tq rows, instead of B GEMMs of
        // nh·Tq rows over B copies (8 rows a GEMM run far below the CPU's GEMM speed).
        Ps = shapeOf(shared, 0);
        parts.unshift(reshape(g.op("MatMul", [g.op("Reshape", [q, g.i64([-1, D])]), g.op("Transpose", [shared])]), [b, rowsEach, Ps]));
        fullBias = g.op("Concat", [g.op("Expand", [g.f32(0), g.op("Concat", [b, g.i64([1]), Tq, Ps], { axis: A.i(0) })]), bias], { axis: A.i(-1) });
      }
      const scores = g.op("Concat", parts, { axis: A.i(-1) }); // [b, nh·Tq, Ps+P+Tq]
      const probs4 = g.op("Softmax", [g.op("Add", [g.op("Reshape", [scores, g.op("Concat", [b, g.i64([nh]), Tq, g.i64([-1])], { axis: A.i(0) })]), fullBias])], { axis: A.i(-1) });
      const probs = g.op("Reshape", [probs4, g.op("Concat", [b, rowsEach, g.i64([-1])], { axis: A.i(0) })]);
      const pastEnd = g.op("Add", [Ps, shapeOf(past, 1)]);
      const pastProbs = g.op("Slice", [probs, Ps, pastEnd, g.i64([2])]);
      const newProbs = g.op("Slice", [probs, pastEnd, g.i64([2 ** 62]), g.i64([2])]);
      // probs × whole keys, then (below) keep the latent columns: slicing the small product is cheaper than the keys.
      const attended = g.op("Add", [g.op("MatMul", [pastProbs, past]), g.op("MatMul", [newProbs, kv])]);
      if (!shared) return attended;
      const sharedProbs = reshape(g.op("Slice", [probs, g.i64([0]), Ps, g.i64([2])]), [g.i64([-1]), Ps]);
      return g.op("Add", [reshape(g.op("MatMul", [sharedProbs, shared]), [b, rowsEach, g.i64([D])]), attended]);
    };
    // Blocks that every sequence of the group has at the start of its past (a cached prompt prefix they share:
    // one system prompt, n choices) come as `shared_table [ns]`, and `table`/`past_len` hold only what follows.
    const wholeGroup = () => [attendLatents(qRows, gatherPast(table), kvNew3, maskBias, g.op("Reshape", [g.op("Gather", [pool, sharedTable], { axis: A.i(0) }), g.i64([-1, D])]))];
    // Long pasts (and no shared blocks) are attended a few sequences at a time, so each part's gathered rows are
    // still in cache when both its GEMMs read them (see ATTENTION_PART_BYTES for what that saves).
    const partRows = g.op("Max", [g.op("Div", [g.i64([Math.max(1, Math.floor(opts.attentionPartBytes / (D * 4)))]), g.op("Max", [P, g.i64([1])])]), g.i64([1])]);
    const inParts = g.op("And", [g.op("Less", [partRows, B]), g.op("Equal", [shapeOf(sharedTable, 0), g.i64([0])])]);
    const partByPart = () => {
      const parts = g.op("Squeeze", [g.op("Div", [g.op("Sub", [g.op("Add", [B, partRows]), g.i64([1])]), partRows])]);
      const none = g.op("Slice", [qRows, g.i64([0]), g.i64([0]), g.i64([0])]);
      return g.loop(parts, [none], (k, [done]) => {
        const from = g.op("Mul", [k, partRows]);
        const part = (t: string) => g.op("Slice", [t, from, g.op("Add", [from, partRows]), g.i64([0])]);
        return [g.op("Concat", [done!, attendLatents(part(qRows), gatherPast(part(table)), part(kvNew3), part(maskBias), null)], { axis: A.i(0) })];
      });
    };
    const [attended] = g.ifElse(inParts, partByPart, wholeGroup) as [string]; // [B, nh·Tq, D]
    const oRows = g.op("Slice", [attended, g.i64([0]), g.i64([kvl]), g.i64([2])]); // [B, nh·Tq, kvl]
    const oTok = g.op("Reshape", [g.op("Transpose", [g.op("Reshape", [oRows, g.op("Concat", [B, g.i64([nh]), Tq, g.i64([kvl])], { axis: A.i(0) })])], { perm: A.ints([0, 2, 1, 3]) }), g.i64([-1, nh, kvl])]); // [T, nh, kvl]
    const oV = headsFirst(g.op("MatMul", [headsFirst(oTok), g.weight("w_uv_t", wuvT, [nh, kvl, vd])])); // [T, nh, v]
    return [g.op("Reshape", [oV, g.i64([-1, nh * vd])])];
  };
  const expandedAttention = (): string[] => {
    // Long prefill chunks: keys and values are decompressed per head once per run, so the quadratic part works
    // at nope+R / v per head instead of kvl+R / kvl+R — cheaper when many queries share the keys.
    const heads = Array.from({ length: nh }, (_, h) => headRows(h));
    const wukT = transpose(stackRows(...heads.map((r) => r.subarray(0, nope * kvl))), nh * nope, kvl); // [kvl, nh·nope]
    const wuvT = transpose(stackRows(...heads.map((r) => r.subarray(nope * kvl))), nh * vd, kvl); // [kvl, nh·v]
    const keys = g.op("Concat", [gatherPast(table), kvNew3], { axis: A.i(1) });
    const latents = g.op("Slice", [keys, g.i64([0]), g.i64([kvl]), g.i64([2])]); // [B, P+Tq, kvl]
    const keysPerHead = (w: Float32Array, name: string, width: number) => // [B, nh, P+Tq, width]
      g.op("Transpose", [g.op("Reshape", [g.op("MatMul", [latents, g.weight(name, w, [kvl, nh * width])]), g.op("Concat", [B, g.i64([-1, nh, width])], { axis: A.i(0) })])], { perm: A.ints([0, 2, 1, 3]) });
    const kNope = keysPerHead(wukT, "w_uk_heads", nope);
    const vals = keysPerHead(wuvT, "w_uv_heads", vd);
    // The shared rope key joins every head's key; the scale goes on the (small) queries. One GEMM then gives
    // the scores, with no extra passes over the [B, nh, Tq, P+Tq] tensor.
    const kPe = g.op("Slice", [keys, g.i64([kvl]), g.i64([D]), g.i64([2])]); // [B, P+Tq, R]
    const kPeHeads = g.op("Expand", [g.op("Unsqueeze", [kPe, g.i64([1])]), g.op("Concat", [B, g.i64([nh]), g.op("Add", [P, Tq]), g.i64([R])], { axis: A.i(0) })]);
    const k = g.op("Concat", [kNope, kPeHeads], { axis: A.i(-1) }); // [B, nh, P+Tq, nope+R]
    const q = g.op("Mul", [perSequenceHeads(g.op("Concat", [qNope!, qPeRot], { axis: A.i(-1) }), nope + R), scale]); // [B, nh, Tq, nope+R]
    const scores4 = g.op("MatMul", [q, g.op("Transpose", [k], { perm: A.ints([0, 1, 3, 2]) })]); // [B, nh, Tq, P+Tq]
    const o = g.op("MatMul", [attend(scores4), vals]); // [B, nh, Tq, v]
    return [g.op("Reshape", [g.op("Transpose", [o], { perm: A.ints([0, 2, 1, 3]) }), g.i64([-1, nh * vd])])];
  };
  // Long chunks attend in the expanded form, everything else (decode, short chunks) in the absorbed one; the
  // shared rows of `shared_table` are read by the absorbed form only, so a group bringing any takes it.
  const expandedForm = g.op("And", [g.op("GreaterOrEqual", [Tq, g.i64([opts.expandedMinTokens])]), g.op("Equal", [shapeOf(sharedTable, 0), g.i64([0])])]);
  const [oFlat] = g.ifElse(expandedForm, expandedAttention, absorbedAttention) as [string]; // [T, nh·v]
  const attn = linear(g, oFlat, "o_proj", W("self_attn.o_proj.weight", [H, nh * vd]), H, nh * vd);
  const h = g.op("Add", [x, attn]);
  const hn = rmsNorm(g, h, "post_norm", W("post_attention_layernorm.weight", [H]), cfg.rmsEps);

  if (!isMoeLayer(cfg, layer)) {
    const I = cfg.intermediate;
    const mlp = swiglu(g, hn, "mlp", {
      gate: W("mlp.gate_proj.weight", [I, H]),
      up: W("mlp.up_proj.weight", [I, H]),
      down: W("mlp.down_proj.weight", [H, I]),
    }, H, I);
    g.output(g.op("Add", [h, mlp]), "out", ["T", H]);
    return g.build();
  }

  const E = cfg.routedExperts;
  const logits = linear(g, hn, "gate", W("mlp.gate.weight", [E, H]), E, H);
  const gateScores = cfg.scoring === "sigmoid" ? g.op("Sigmoid", [logits]) : g.op("Softmax", [logits], { axis: A.i(-1) });
  g.output(gateScores, "scores", ["T", E]);
  g.output(hn, "hn", ["T", H]);
  let base = h;
  if (cfg.sharedExperts > 0) {
    const I = cfg.moeIntermediate * cfg.sharedExperts;
    base = g.op("Add", [h, swiglu(g, hn, "shared", {
      gate: W("mlp.shared_experts.gate_proj.weight", [I, H]),
      up: W("mlp.shared_experts.up_proj.weight", [I, H]),
      down: W("mlp.shared_experts.down_proj.weight", [H, I]),
    }, H, I)]);
  }
  g.output(base, "base", ["T", H]);
  return g.build();
}

/**
 * Several routed experts of one layer in one graph, so a step costs one session run per layer instead of one
 * per active expert. Inputs: the step's post-attention states `hn [T, H]`; `rows [N]`, the token of each
 * routed pair, sorted by expert (in `experts` order); `counts [k]`, how many pairs each expert takes (0 for
 * idle ones); `slot_rows [T·K]` / `slot_weights [T, K, 1]`, each token's pairs as positions among the N
 * (N = none) with their gate weights (see `combineSlots`); `base [T, H]`. Output `out [T, H]` = base + each
 * token's weighted sum of its experts' outputs.
 * Only the two projections are per expert; the SwiGLU activation runs once over every row of the layer (the
 * per-expert activation nodes cost more in executor overhead than their arithmetic: a quarter of the run at
 * one token, several percent at 32). The combine is a gather and a dense sum over K, not a scatter-add, so
 * threads never write the same row.
 */
export function buildExpertGroupGraph(cfg: ModelConfig, ckpt: Checkpoint, layer: number, experts: readonly number[]): Uint8Array {
  const H = cfg.hidden;
  const I = cfg.moeIntermediate;
  const K = cfg.topK;
  const g = new GraphBuilder(`experts_${layer}`);
  const hn = g.input("hn", ["T", H]);
  const rows = g.input("rows", ["N"], "int64");
  const counts = g.input("counts", [experts.length], "int64");
  const slotRows = g.input("slot_rows", ["S"], "int64");
  const slotWeights = g.input("slot_weights", ["T", K, 1]);
  const base = g.input("base", ["T", H]);
  /** Each expert's rows of `x` projected by it, stacked in expert order, then `after` rows. */
  const perExpert = (x: string, project: (part: string, e: number) => string, after: string[] = []) => {
    const parts = experts.length === 1 ? [x] : g.opN("Split", [x, counts], experts.length, { axis: A.i(0) });
    const outs = [...experts.map((e, k) => project(parts[k]!, e)), ...after];
    return outs.length === 1 ? outs[0]! : g.op("Concat", outs, { axis: A.i(0) });
  };
  const weight = (e: number, name: string, shape: number[]) => ckpt.get(`model.layers.${layer}.mlp.experts.${e}.${name}.weight`, shape);
  const x = g.op("Gather", [hn, rows], { axis: A.i(0) });
  const gateUp = perExpert(x, (part, e) => gateUpProjection(g, part, `e${e}`, { gate: weight(e, "gate_proj", [I, H]), up: weight(e, "up_proj", [I, H]) }, H, I));
  const act = swigluActivation(g, gateUp, I);
  // The zero row joins the same Concat: a second one would copy every output row again.
  const withZero = perExpert(act, (part, e) => linear(g, part, `e${e}.down`, weight(e, "down_proj", [H, I]), H, I), [g.weight("zero_row", new Float32Array(H), [1, H])]);
  const picked = g.op("Reshape", [g.op("Gather", [withZero, slotRows], { axis: A.i(0) }), g.i64([-1, K, H])]);
  const combined = g.op("ReduceSum", [g.op("Mul", [picked, slotWeights]), g.i64([1])], { keepdims: A.i(0) });
  g.output(g.op("Add", [base, combined]), "out", ["T", H]);
  return g.build();
}

/** One routed expert: `[n, H] → [n, H]`. */
export function buildExpertGraph(cfg: ModelConfig, ckpt: Checkpoint, layer: number, expert: number): Uint8Array {
  const H = cfg.hidden;
  const I = cfg.moeIntermediate;
  const p = `model.layers.${layer}.mlp.experts.${expert}`;
  const g = new GraphBuilder(`expert_${layer}_${expert}`);
  const x = g.input("x", ["n", H]);
  const y = swiglu(g, x, "e", {
    gate: ckpt.get(`${p}.gate_proj.weight`, [I, H]),
    up: ckpt.get(`${p}.up_proj.weight`, [I, H]),
    down: ckpt.get(`${p}.down_proj.weight`, [H, I]),
  }, H, I);
  g.output(y, "y", ["n", H]);
  return g.build();
}

/**
 * Final norm and lm_head: `x [n, H] → logits [n, V]`, and, as `needs [3]` asks (> 0: yes):
 * - needs[0]: `probs [n, V]` = softmax(logits · inv_temp) per row, so temperature sampling over a large
 *   vocabulary costs the pod one vectorised kernel instead of V `exp`s per token in JavaScript (rows that do not
 *   need it pass any inv_temp and ignore their probs);
 * - needs[1] (with needs[0]): `token [n]`, a draw from each row's probs with its variate `u [n, 1]` (see
 *   `inverseCdfDraw`);
 * - needs[2]: `argmax [n]`, each row's highest logit (the first on ties).
 * What is not asked for is not computed (the output is empty): onnxruntime runs every node of a graph, fetched
 * or not. Tokens come as float32 (exact below 2^24). A row sampled over the whole vocabulary, or greedily, then
 * needs no `[V]` output at all (32 rows of the bench model: ~1.5 ms a step less than fetching probs and drawing
 * in JavaScript).
 */
export function buildHeadGraph(cfg: ModelConfig, ckpt: Checkpoint): Uint8Array {
  const H = cfg.hidden;
  const V = cfg.vocabSize;
  if (V >= 2 ** 24) throw new RangeError(`a vocabulary of ${V} tokens is beyond the head's float32 token outputs`);
  const g = new GraphBuilder("head");
  const x = g.input("x", ["n", H]);
  const invTemp = g.input("inv_temp", ["n", 1]);
  const u = g.input("u", ["n", 1]);
  const needs = g.input("needs", [3]);
  const xn = rmsNorm(g, x, "norm", ckpt.get("model.norm.weight", [H]), cfg.rmsEps);
  const headName = cfg.tieEmbeddings && !ckpt.has("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight";
  const logits = linear(g, xn, "lm_head", ckpt.get(headName, [V, H]), V, H);
  const asked = (k: number) => g.op("Greater", [g.op("Gather", [needs, g.i64([k])], { axis: A.i(0) }), g.f32(0)]);
  const empty = g.weight("empty", new Float32Array(0), [0]);
  const [probs, token] = g.ifElse(
    asked(0),
    () => {
      const p = g.op("Softmax", [g.op("Mul", [logits, invTemp])], { axis: A.i(-1) });
      return [p, g.ifElse(asked(1), () => [inverseCdfDraw(g, p, u, V)], () => [empty])[0]!];
    },
    () => [empty, empty],
  );
  const [argmax] = g.ifElse(asked(2), () => [g.op("Cast", [g.op("ArgMax", [logits], { axis: A.i(-1), keepdims: A.i(0) })], { to: A.i(1) })], () => [empty]);
  g.output(logits, "logits", ["n", V]);
  g.output(probs!, "probs", null);
  g.output(token!, "token", null);
  g.output(argmax!, "argmax", null);
  return g.build();
}
