import { describe, expect, it } from "vitest";
import { parseModelConfig } from "../../gpu-backend/engine/config.js";
import { decodeStepParameters, parameterCounts } from "../../gpu-backend/engine/tensor-names.js";
import { TINY_V3_CONFIG } from "../../gpu-backend/tools/tiny-config.js";
import { benchModelConfig } from "../../bench/bench-model.js";

const tiny = parseModelConfig(TINY_V3_CONFIG);
const { hidden: H, vocabSize: V, routedExperts: E, topK: k, moeIntermediate: I } = tiny;
/** Routed-expert weights in all: 3 MoE layers × 16 experts × gate, up and down. */
const routed = 3 * E * 3 * H * I;

describe("parameters a decode step reads", () => {
  it("one token reads its top-k routed experts, one embedding row and every other weight", () => {
    const { total, active } = parameterCounts(tiny);
    expect(active).toBe(decodeStepParameters(tiny, 1));
    expect(active).toBeCloseTo(total - (V - 1) * H - routed * (1 - k / E), 6);
  });

  it("a batch reads each expert once, however many of its tokens pick it", () => {
    const { total } = parameterCounts(tiny);
    // 4 of 16 experts a token: 1 − (3/4)^8 of them are expected busy at 8 tokens.
    expect(decodeStepParameters(tiny, 8)).toBeCloseTo(total - (V - 8) * H - routed * 0.75 ** 8, 6);
    // A batch so large that every expert is busy reads every routed weight once.
    expect(decodeStepParameters(tiny, 512)).toBeCloseTo(total - (V - 512) * H, 0);
  });

  it("a head that shares the embedding table reads all of it", () => {
    const tied = parseModelConfig({ ...TINY_V3_CONFIG, tie_word_embeddings: true });
    expect(parameterCounts(tied).total).toBe(parameterCounts(tiny).total - V * H);
    expect(decodeStepParameters(tied, 1)).toBeCloseTo(parameterCounts(tied).total - routed * (1 - k / E), 6);
  });

  it("bounds batching on the benchmark model: 32 streams read ~5.2× one stream's weights, not 32×", () => {
    const bench = benchModelConfig();
    expect(parameterCounts(bench).active).toBe(36_483_520);
    expect((32 * decodeStepParameters(bench, 1)) / decodeStepParameters(bench, 32)).toBeCloseTo(6.19, 2);
  });
});
