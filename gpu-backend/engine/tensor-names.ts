import { isMoeLayer, type ModelConfig } from "./config.js";

export type InitKind = "linear" | "embed" | "norm" | "gate_bias";

export interface TensorSpec {
  name: string;
  shape: number[];
  /** How a random checkpoint initialises it (linear: N(0, 1/fan_in)). */
  init: InitKind;
}

/** Every tensor a DeepSeek-V3/V2 checkpoint of this config holds, with HF names and `[out, in]` shapes. */
export function expectedTensors(c: ModelConfig): TensorSpec[] {
  const H = c.hidden;
  const nh = c.heads;
  const out: TensorSpec[] = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, H], init: "embed" }];
  const lin = (name: string, o: number, i: number) => out.push({ name, shape: [o, i], init: "linear" });
  const norm = (name: string, n: number) => out.push({ name, shape: [n], init: "norm" });
  const mlp = (p: string, inter: number) => {
    lin(`${p}.gate_proj.weight`, inter, H);
    lin(`${p}.up_proj.weight`, inter, H);
    lin(`${p}.down_proj.weight`, H, inter);
  };
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    norm(`${p}.input_layernorm.weight`, H);
    if (c.qLoraRank !== null) {
      lin(`${p}.self_attn.q_a_proj.weight`, c.qLoraRank, H);
      norm(`${p}.self_attn.q_a_layernorm.weight`, c.qLoraRank);
      lin(`${p}.self_attn.q_b_proj.weight`, nh * (c.nopeDim + c.ropeDim), c.qLoraRank);
    } else {
      lin(`${p}.self_attn.q_proj.weight`, nh * (c.nopeDim + c.ropeDim), H);
    }
    lin(`${p}.self_attn.kv_a_proj_with_mqa.weight`, c.kvLoraRank + c.ropeDim, H);
    norm(`${p}.self_attn.kv_a_layernorm.weight`, c.kvLoraRank);
    lin(`${p}.self_attn.kv_b_proj.weight`, nh * (c.nopeDim + c.vDim), c.kvLoraRank);
    lin(`${p}.self_attn.o_proj.weight`, H, nh * c.vDim);
    norm(`${p}.post_attention_layernorm.weight`, H);
    if (!isMoeLayer(c, l)) {
      mlp(`${p}.mlp`, c.intermediate);
      continue;
    }
    lin(`${p}.mlp.gate.weight`, c.routedExperts, H);
    if (c.topkMethod === "noaux_tc") out.push({ name: `${p}.mlp.gate.e_score_correction_bias`, shape: [c.routedExperts], init: "gate_bias" });
    for (let e = 0; e < c.routedExperts; e++) mlp(`${p}.mlp.experts.${e}`, c.moeIntermediate);
    if (c.sharedExperts > 0) mlp(`${p}.mlp.shared_experts`, c.moeIntermediate * c.sharedExperts);
  }
  norm("model.norm.weight", H);
  if (!c.tieEmbeddings) out.push({ name: "lm_head.weight", shape: [c.vocabSize, H], init: "linear" });
  return out;
}

/**
 * Parameters a decode step of `batch` tokens reads, in expectation when routing spreads tokens evenly: each
 * routed expert when any of the tokens picks it (probability 1 − (1 − k/E)^batch), one embedding row per token
 * (the whole table when the head shares it), every other weight once. `batch` × the one-token figure ÷ this is
 * the most that batching can multiply decode tokens/s by, for an engine whose steps stream their weights from
 * memory.
 */
export function decodeStepParameters(c: ModelConfig, batch: number): number {
  const picked = 1 - (1 - c.topK / c.routedExperts) ** batch;
  let n = 0;
  for (const t of expectedTensors(c)) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (/\.mlp\.experts\.\d+\./.test(t.name)) n += size * picked;
    else if (t.name === "model.embed_tokens.weight" && !c.tieEmbeddings) n += Math.min(batch, c.vocabSize) * c.hidden;
    else n += size;
  }
  return n;
}

/** Parameters in all, and those one token's forward pass reads (`active`: routed experts, top-k of them). */
export function parameterCounts(c: ModelConfig): { total: number; active: number } {
  const total = expectedTensors(c).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  return { total, active: decodeStepParameters(c, 1) };
}
