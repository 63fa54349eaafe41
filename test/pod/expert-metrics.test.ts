import { describe, expect, it } from "vitest";
import { expertMetrics, prometheus } from "../../gpu-backend/server/metrics.js";

describe("expert load in Prometheus", () => {
  // Layer 0 dense (its row stays empty), layers 1 and 2 MoE with 4 experts.
  const load = [new Float64Array(4), Float64Array.from([6, 2, 0, 0]), Float64Array.from([1, 1, 1, 1])];

  it("sums each expert over the MoE layers and gives one imbalance gauge per layer", () => {
    const text = prometheus(expertMetrics(load, [1, 2]));
    expect(text).toMatch(/^pod_expert_tokens_total\{expert="0"\} 7$/m);
    expect(text).toMatch(/^pod_expert_tokens_total\{expert="3"\} 1$/m);
    expect(text.match(/^pod_expert_tokens_total\{/gm)).toHaveLength(4);
    expect(text).toMatch(/^pod_expert_load_imbalance\{layer="1"\} 3$/m); // 6 over a mean of 2
    expect(text).toMatch(/^pod_expert_load_imbalance\{layer="2"\} 1$/m);
    expect(text).not.toMatch(/layer="0"/);
  });

  it("reports a layer that has routed nothing yet as balanced", () => {
    expect(prometheus(expertMetrics([new Float64Array(4), new Float64Array(4)], [1]))).toMatch(/^pod_expert_load_imbalance\{layer="1"\} 1$/m);
  });
});
