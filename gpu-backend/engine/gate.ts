import type { ModelConfig } from "./config.js";
import { topKIndices } from "./top-k.js";

/** The routing decision for one token: chosen experts (descending selection score) and their multipliers. */
export interface Route {
  experts: Int32Array;
  weights: Float32Array;
}

export type GateConfig = Pick<
  ModelConfig,
  "routedExperts" | "topK" | "nGroup" | "topkGroup" | "topkMethod" | "normTopkProb" | "routedScaling"
>;

/**
 * Selects experts for one token from its gate scores (already sigmoid'ed for V3, softmax'ed for V2).
 *  - noaux_tc (V3): choose on score + correction bias; a group's score is the sum of its top-2 biased scores;
 *    keep `topk_group` groups; weights are the unbiased scores, normalised if `norm_topk_prob`, then
 *    always × `routed_scaling_factor`.
 *  - group_limited_greedy (V2): group score = max score; greedy: no groups. Weights are the scores,
 *    normalised (and not scaled) when `norm_topk_prob` and k > 1, otherwise × `routed_scaling_factor`.
 */
export function route(c: GateConfig, scores: Float32Array | Float64Array, bias: Float32Array | null, offset = 0): Route {
  const E = c.routedExperts;
  const perGroup = E / c.nGroup;
  // Per-token scratch is shared (routing is synchronous): the gate runs for every token of every MoE layer,
  // and fresh arrays per call were most of a decode step's garbage.
  const choice = scratch.choice(E);
  for (let e = 0; e < E; e++) choice[e] = scores[offset + e]! + (c.topkMethod === "noaux_tc" && bias ? bias[e]! : 0);

  const grouped = c.topkMethod !== "greedy" && c.nGroup > 1 && c.topkGroup < c.nGroup;
  const kept = scratch.kept(c.nGroup);
  if (grouped) {
    const groupScore = scratch.groupScore(c.nGroup);
    for (let g = 0; g < c.nGroup; g++) {
      // noaux_tc: the sum of the group's two best biased scores; group_limited_greedy: its best score.
      let first = -Infinity;
      let second = -Infinity;
      for (let e = g * perGroup; e < (g + 1) * perGroup; e++) {
        const v = choice[e]!;
        if (v > first) {
          second = first;
          first = v;
        } else if (v > second) second = v;
      }
      groupScore[g] = c.topkMethod === "noaux_tc" ? first + second : first;
    }
    kept.fill(0);
    for (const g of topKIndices(groupScore, c.topkGroup)) kept[g] = 1;
  }

  // The k best unmasked choices, best first (ties: lower expert first), as topKIndices picks them; written
  // out here because this runs for every token of every MoE layer (with topKIndices and an exclusion callback a
  // route took 2.4× as long).
  const k = c.topK;
  const best = scratch.best(k);
  let count = 0;
  for (let e = 0; e < E; e++) {
    if (grouped && kept[(e / perGroup) | 0] === 0) continue;
    const v = choice[e]!;
    if (count === k && !(v > choice[best[k - 1]!]!)) continue;
    let j = count < k ? count++ : k - 1;
    while (j > 0 && choice[best[j - 1]!]! < v) {
      best[j] = best[j - 1]!;
      j--;
    }
    best[j] = e;
  }
  const experts = best.slice(0, count);
  const weights = new Float32Array(count);
  let sum = 0;
  for (let i = 0; i < count; i++) sum += scores[offset + experts[i]!]!;
  const v3 = c.topkMethod === "noaux_tc";
  const normalise = c.normTopkProb && (v3 || c.topK > 1);
  const scale = v3 || !normalise ? c.routedScaling : 1;
  for (let i = 0; i < count; i++) {
    const w = scores[offset + experts[i]!]!;
    weights[i] = (normalise ? w / (sum + 1e-20) : w) * scale;
  }
  return { experts, weights };
}

/** Exactly `n` long (selection scans whole arrays); reallocated only when a model of another size routes. */
const buffers = { choice: new Float64Array(0), groupScore: new Float64Array(0), kept: new Uint8Array(0), best: new Int32Array(0) };
const scratch = {
  choice: (n: number) => (buffers.choice.length === n ? buffers.choice : (buffers.choice = new Float64Array(n))),
  groupScore: (n: number) => (buffers.groupScore.length === n ? buffers.groupScore : (buffers.groupScore = new Float64Array(n))),
  kept: (n: number) => (buffers.kept.length === n ? buffers.kept : (buffers.kept = new Uint8Array(n))),
  best: (n: number) => (buffers.best.length === n ? buffers.best : (buffers.best = new Int32Array(n))),
};
