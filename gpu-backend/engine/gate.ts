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
export function route(c: GateConfig, scores: Float32Array | Float64Array, bias: Float32Array | null): Route {
  const E = c.routedExperts;
  const perGroup = E / c.nGroup;
  const choice = new Float64Array(E);
  for (let e = 0; e < E; e++) choice[e] = scores[e]! + (c.topkMethod === "noaux_tc" && bias ? bias[e]! : 0);

  let masked: ((e: number) => boolean) | undefined;
  if (c.topkMethod !== "greedy" && c.nGroup > 1 && c.topkGroup < c.nGroup) {
    const groupScore = new Float64Array(c.nGroup);
    for (let g = 0; g < c.nGroup; g++) {
      const members = choice.subarray(g * perGroup, (g + 1) * perGroup);
      if (c.topkMethod === "noaux_tc") {
        const [a, b] = topKIndices(members, 2);
        groupScore[g] = members[a!]! + members[b!]!;
      } else {
        groupScore[g] = Math.max(...members);
      }
    }
    const kept = new Set(topKIndices(groupScore, c.topkGroup));
    masked = (e) => !kept.has(Math.floor(e / perGroup));
  }

  const chosen = topKIndices(choice, c.topK, masked);
  const experts = Int32Array.from(chosen);
  const weights = new Float32Array(chosen.length);
  let sum = 0;
  for (const e of chosen) sum += scores[e]!;
  const v3 = c.topkMethod === "noaux_tc";
  const normalise = c.normTopkProb && (v3 || c.topK > 1);
  const scale = v3 || !normalise ? c.routedScaling : 1;
  chosen.forEach((e, i) => {
    const w = normalise ? scores[e]! / (sum + 1e-20) : scores[e]!;
    weights[i] = w * scale;
  });
  return { experts, weights };
}
