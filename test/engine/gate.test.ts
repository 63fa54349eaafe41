import { describe, expect, it } from "vitest";
import { route, type GateConfig } from "../../gpu-backend/engine/gate.js";
import { topKIndices } from "../../gpu-backend/engine/top-k.js";

const v3: GateConfig = { routedExperts: 8, topK: 2, nGroup: 4, topkGroup: 2, topkMethod: "noaux_tc", normTopkProb: true, routedScaling: 2.5 };
const f = (xs: number[]) => Float32Array.from(xs);

describe("topKIndices", () => {
  it("breaks ties towards the lower index, as torch.topk does", () => {
    expect(topKIndices([0.5, 0.9, 0.9, 0.1, 0.9], 2)).toEqual([1, 2]);
    expect(topKIndices([1, 1, 1, 1], 3)).toEqual([0, 1, 2]);
  });
  it("equals a full stable sort, with and without excluded indices", () => {
    let s = 7;
    const values = Array.from({ length: 300 }, () => ((s = (s * 48271) % 2147483647) % 40) / 8); // many ties
    const odd = (i: number) => i % 2 === 1;
    for (const k of [1, 6, 37, 300]) {
      const sorted = values.map((_, i) => i).sort((a, b) => values[b]! - values[a]! || a - b);
      expect(topKIndices(values, k)).toEqual(sorted.slice(0, k));
      expect(topKIndices(values, k, odd)).toEqual(sorted.filter((i) => !odd(i)).slice(0, k));
    }
  });
});

describe("noaux_tc (V3)", () => {
  it("selects on biased scores but weights by unbiased ones, normalised then scaled", () => {
    // Without bias expert 0 wins; the bias promotes expert 3 over it.
    const scores = f([0.9, 0.1, 0.8, 0.5, 0.2, 0.2, 0.1, 0.1]);
    const bias = f([0, 0, 0, 0.5, 0, 0, 0, 0]);
    const r = route(v3, scores, bias);
    expect([...r.experts]).toEqual([3, 0]); // 1.0 (0.5+0.5) then 0.9
    const sum = 0.5 + 0.9;
    expect(r.weights[0]).toBeCloseTo((0.5 / sum) * 2.5, 6);
    expect(r.weights[1]).toBeCloseTo((0.9 / sum) * 2.5, 6);
  });

  it("masks whole groups: the best expert of a dropped group is never chosen", () => {
    // Groups of 2: g0 = {0,1}, g1 = {2,3}, g2 = {4,5}, g3 = {6,7}. Group score = sum of top-2.
    // Expert 6 has the single highest score, but g3's sum (0.95 + 0) loses to g0 (1.2) and g1 (1.1).
    const scores = f([0.6, 0.6, 0.55, 0.55, 0.3, 0.3, 0.95, 0.0]);
    const r = route(v3, scores, f(new Array(8).fill(0)));
    expect([...r.experts]).not.toContain(6);
    expect([...r.experts].sort()).toEqual([0, 1]);
  });

  it("scales by routed_scaling_factor even without normalisation", () => {
    const r = route({ ...v3, normTopkProb: false, nGroup: 1, topkGroup: 1 }, f([0.2, 0.4, 0, 0, 0, 0, 0, 0]), null);
    expect([...r.experts]).toEqual([1, 0]);
    expect(r.weights[0]).toBeCloseTo(0.4 * 2.5, 6);
  });

  it("keeps exactly topk_group groups when group scores tie", () => {
    const scores = f([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    const r = route({ ...v3, topK: 4 }, scores, null);
    // Ties resolve to the lowest groups (0 and 1), then the lowest experts.
    expect([...r.experts]).toEqual([0, 1, 2, 3]);
  });
});

describe("V2 gates", () => {
  it("greedy: top-k of softmax scores, scaled when not normalised", () => {
    const c: GateConfig = { ...v3, topkMethod: "greedy", normTopkProb: false, routedScaling: 1.5 };
    const r = route(c, f([0.1, 0.3, 0.05, 0.05, 0.2, 0.1, 0.1, 0.1]), null);
    expect([...r.experts]).toEqual([1, 4]);
    expect(r.weights[0]).toBeCloseTo(0.45, 6);
  });
  it("group_limited_greedy: group score is the max; normalised and not scaled when norm_topk_prob and k > 1", () => {
    const c: GateConfig = { ...v3, topkMethod: "group_limited_greedy", normTopkProb: true, routedScaling: 16 };
    // Max per group: g0 0.2, g1 0.25, g2 0.3, g3 0.05 → keep g2, g1.
    const r = route(c, f([0.2, 0.2, 0.25, 0.0, 0.3, 0.0, 0.05, 0.0]), null);
    expect([...r.experts]).toEqual([4, 2]);
    expect(r.weights[0]! + r.weights[1]!).toBeCloseTo(1, 6);
  });
});
