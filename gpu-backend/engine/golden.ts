import { z } from "zod";
import { ContiguousLatentCache } from "./latent-cache.js";
import type { DeepSeekModel } from "./model.js";

/** The golden-file format of `../shared/golden/tiny-v3` (dsref-golden-v1); extra fields are ignored. */
export const GoldenSchema = z.looseObject({
  format: z.string(),
  prompts: z.array(
    z.looseObject({
      name: z.string(),
      input_ids: z.array(z.number().int()),
      last_logits: z.array(z.number()),
      argmax: z.array(z.number().int()),
      greedy_new_tokens: z.array(z.number().int()),
    }),
  ),
  routing: z
    .looseObject({
      prompt_index: z.number().int(),
      layers: z.array(z.looseObject({ layer: z.number().int(), experts: z.array(z.array(z.number().int())) })),
    })
    .optional(),
  suggested_tolerance: z.looseObject({ last_logits_max_abs_f32_engine: z.number().optional() }).optional(),
});
export type Golden = z.infer<typeof GoldenSchema>;

export interface EvalReport {
  prompts: number;
  max_abs_diff: number;
  max_rel_diff: number;
  argmax_agree: number;
  greedy_agree: number;
  routing_agree: number | null;
  tolerance: number;
  passed: boolean;
}

const argmax = (v: Float32Array, off: number, n: number): number => {
  let best = 0;
  for (let i = 1; i < n; i++) if (v[off + i]! > v[off + best]!) best = i;
  return best;
};

/**
 * Runs every golden prompt: one prefill with logits at every position (last-position logits and argmax),
 * then greedy decoding through the latent cache (which must reproduce the reference's full recompute),
 * and the routing of the designated prompt.
 */
export async function evaluateGolden(model: DeepSeekModel, golden: Golden, tolerance: number): Promise<EvalReport> {
  const V = model.config.vocabSize;
  let maxAbs = 0;
  let maxRel = 0;
  let argmaxOk = 0;
  let argmaxN = 0;
  let greedyOk = 0;
  let greedyN = 0;
  let routingOk = 0;
  let routingN = 0;

  for (const [pi, p] of golden.prompts.entries()) {
    const cache = new ContiguousLatentCache(model.config.layers, model.cacheWidth);
    const routed = new Map<string, number[]>();
    model.onRoute = golden.routing?.prompt_index === pi ? (layer, row, r) => routed.set(`${layer}:${row}`, [...r.experts]) : undefined;
    const { logits } = await model.forward([{ tokens: p.input_ids, past: 0, cache, logits: "all" }]);
    model.onRoute = undefined;
    const all = logits[0]!;
    const n = p.input_ids.length;

    const last = (n - 1) * V;
    let scale = 0;
    for (const g of p.last_logits) scale = Math.max(scale, Math.abs(g));
    for (let v = 0; v < V; v++) {
      const d = Math.abs(all[last + v]! - p.last_logits[v]!);
      maxAbs = Math.max(maxAbs, d);
      maxRel = Math.max(maxRel, d / scale);
    }
    for (let t = 0; t < n; t++) {
      argmaxN++;
      if (argmax(all, t * V, V) === p.argmax[t]) argmaxOk++;
    }

    // Greedy continuation through the cache, one token per step.
    let next = argmax(all, last, V);
    for (let k = 0; k < p.greedy_new_tokens.length; k++) {
      greedyN++;
      if (next === p.greedy_new_tokens[k]) greedyOk++;
      if (k === p.greedy_new_tokens.length - 1) break;
      const step = await model.forward([{ tokens: [next], past: n + k, cache, logits: "last" }]);
      next = argmax(step.logits[0]!, 0, V);
    }

    if (golden.routing?.prompt_index === pi) {
      for (const layer of golden.routing.layers) {
        layer.experts.forEach((want, pos) => {
          routingN++;
          const got = routed.get(`${layer.layer}:${pos}`) ?? [];
          if (got.length === want.length && [...got].sort((a, b) => a - b).join() === [...want].sort((a, b) => a - b).join()) routingOk++;
        });
      }
    }
  }
  const report: EvalReport = {
    prompts: golden.prompts.length,
    max_abs_diff: maxAbs,
    max_rel_diff: maxRel,
    argmax_agree: argmaxN ? argmaxOk / argmaxN : 0,
    greedy_agree: greedyN ? greedyOk / greedyN : 0,
    routing_agree: routingN ? routingOk / routingN : null,
    tolerance,
    passed: false,
  };
  report.passed =
    maxRel <= tolerance && report.argmax_agree === 1 && report.greedy_agree === 1 && (report.routing_agree === null || report.routing_agree === 1);
  return report;
}
