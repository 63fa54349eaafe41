import { describe, expect, it } from "vitest";
import { Rng } from "../../gpu-backend/engine/rng.js";
import { nucleus, topKCandidates } from "../../gpu-backend/sampling/candidates.js";
import { topKIndices } from "../../gpu-backend/engine/top-k.js";

/** The definition: sort every token, most probable first (ties: lower index), and take until the mass reaches p. */
function sortedPrefix(probs: ArrayLike<number>, p: number): number[] {
  const order = Array.from({ length: probs.length }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
  let total = 0;
  for (let i = 0; i < probs.length; i++) total += probs[i]!;
  let acc = 0;
  for (let k = 0; k < order.length; k++) if ((acc += probs[order[k]!]!) >= p * total) return order.slice(0, k + 1);
  return order;
}

const sorted = (a: number[]) => [...a].sort((x, y) => x - y);

describe("sampling candidates: top-p nucleus", () => {
  it("is the sorted-prefix set, for flat, peaked, tied and zero-heavy rows in float32 and float64", () => {
    const rng = new Rng(12);
    for (const sharpness of [0.5, 1, 3, 8]) {
      for (const p of [0.1, 0.5, 0.9, 0.99]) {
        const logits = Array.from({ length: 5000 }, () => sharpness * rng.normal());
        const e = logits.map((l) => Math.exp(l));
        for (const probs of [Float32Array.from(e), Float64Array.from(e)]) {
          const got = nucleus(probs, p, null);
          expect(sorted(got)).toEqual(sorted(sortedPrefix(probs, p)));
          expect(new Set(got).size).toBe(got.length);
        }
      }
    }
    // Ties at the boundary go to the lower indices; zeros are never needed below p = 1.
    const tied = Float32Array.from([0, 1, 1, 1, 1, 0, 2]);
    expect(sorted(nucleus(tied, 0.5, null))).toEqual([1, 6]);
    expect(sorted(nucleus(tied, 0.99, null))).toEqual([1, 2, 3, 4, 6]);
  });
  it("within top-k candidates, takes their most probable prefix", () => {
    const probs = Float64Array.from([0.1, 0.4, 0.05, 0.3, 0.15]);
    expect(nucleus(probs, 0.5, [1, 3, 4])).toEqual([1, 3]); // 0.4 + 0.3 ≥ 0.5 × 0.85
    expect(nucleus(probs, 0.4, [1, 3, 4])).toEqual([1]);
  });
  it("reads a subarray's own values (a row of a larger buffer)", () => {
    const rows = new Float32Array(12);
    rows.set([5, 1, 1, 1, 0, 0], 6);
    expect(sorted(nucleus(rows.subarray(6), 0.6, null))).toEqual([0]);
    const wide = new Float64Array(8);
    wide.set([1, 1, 6, 1], 4);
    expect(sorted(nucleus(wide.subarray(4), 0.6, null))).toEqual([2]);
  });
});

describe("sampling candidates: top-k", () => {
  it("gives topKIndices' answer (most probable first, ties to the lower index) for small and large k", () => {
    const rng = new Rng(21);
    for (const sharpness of [0.5, 2, 8]) {
      const e = Array.from({ length: 3000 }, () => Math.exp(sharpness * rng.normal()));
      // Ties and zeros too.
      for (let i = 0; i < 300; i++) e[i * 7] = e[5]!;
      for (let i = 0; i < 200; i++) e[i * 11 + 1] = 0;
      for (const probs of [Float32Array.from(e), Float64Array.from(e)]) {
        for (const k of [1, 5, 32, 33, 100, 1000, 2999, 3000]) {
          const want = topKIndices(probs, k);
          expect(topKCandidates(probs, k, true)).toEqual(want);
          expect(sorted(topKCandidates(probs, k, false))).toEqual(sorted(want));
        }
      }
    }
  });
});
