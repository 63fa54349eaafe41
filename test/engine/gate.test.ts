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

describe("route against its definition", () => {
  it("picks topKIndices' experts among the kept groups, on random scores with ties, for every gate kind", () => {
    let s = 11;
    const next = () => (s = (s * 48271) % 2147483647) / 2147483647;
    const gates: GateConfig[] = [
      { routedExperts: 64, topK: 6, nGroup: 8, topkGroup: 4, topkMethod: "noaux_tc", normTopkProb: true, routedScaling: 2.5 },
      { routedExperts: 64, topK: 6, nGroup: 8, topkGroup: 3, topkMethod: "group_limited_greedy", normTopkProb: false, routedScaling: 16 },
      { routedExperts: 64, topK: 6, nGroup: 1, topkGroup: 1, topkMethod: "greedy", normTopkProb: true, routedScaling: 1 },
      { routedExperts: 8, topK: 6, nGroup: 4, topkGroup: 2, topkMethod: "noaux_tc", normTopkProb: true, routedScaling: 1 }, // k above what kept groups hold
    ];
    for (const c of gates) {
      const perGroup = c.routedExperts / c.nGroup;
      for (let t = 0; t < 200; t++) {
        // Coarse values, so ties among experts and among groups are common; the row sits at an offset.
        const scores = Float32Array.from({ length: 3 * c.routedExperts }, () => Math.round(next() * 8) / 8);
        const bias = Float32Array.from({ length: c.routedExperts }, () => Math.round(next() * 4) / 16);
        const offset = c.routedExperts;
        const choice = Array.from({ length: c.routedExperts }, (_, e) => scores[offset + e]! + (c.topkMethod === "noaux_tc" ? bias[e]! : 0));
        let keep = (_: number) => true;
        if (c.topkMethod !== "greedy" && c.nGroup > 1 && c.topkGroup < c.nGroup) {
          const groupScore = Array.from({ length: c.nGroup }, (_, g) => {
            const top = topKIndices(choice.slice(g * perGroup, (g + 1) * perGroup), 2).map((i) => choice[g * perGroup + i]!);
            return c.topkMethod === "noaux_tc" ? top[0]! + top[1]! : top[0]!;
          });
          const kept = new Set(topKIndices(groupScore, c.topkGroup));
          keep = (e) => kept.has(Math.floor(e / perGroup));
        }
        const want = topKIndices(choice, c.topK, (e) => !keep(e));
        const r = route(c, scores, bias, offset);
        expect([...r.experts]).toEqual(want);
        const picked = want.map((e) => scores[offset + e]!);
        const sum = picked.reduce((a, b) => a + b, 0);
        const normalise = c.normTopkProb && (c.topkMethod === "noaux_tc" || c.topK > 1);
        const scale = c.topkMethod === "noaux_tc" || !normalise ? c.routedScaling : 1;
        expect([...r.weights]).toEqual(Array.from(Float32Array.from(picked, (w) => (normalise ? w / (sum + 1e-20) : w) * scale)));
      }
    }
  });
});
