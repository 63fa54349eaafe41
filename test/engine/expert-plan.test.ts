import { describe, expect, it } from "vitest";
import { bucketByExpert, combineSlots, planExpertRuns } from "../../gpu-backend/engine/expert-plan.js";
import { partitionExperts } from "../../gpu-backend/engine/expert-group.js";

const f = (xs: number[]) => Float32Array.from(xs);

describe("planExpertRuns", () => {
  const routes = [
    { experts: Int32Array.from([5, 1]), weights: f([0.7, 0.3]) },
    { experts: Int32Array.from([1, 2]), weights: f([0.6, 0.4]) },
    { experts: Int32Array.from([2, 5]), weights: f([0.5, 0.5]) },
  ];
  const pairs = (p: ReturnType<typeof planExpertRuns>) =>
    p.tasks.flatMap(([, expert, row, n]) => Array.from({ length: n }, (_, i) => `${p.rows[row + i]}:${expert}:${p.weights[row + i]!.toFixed(2)}`)).sort();

  it("grouped: one task per active expert, ascending, over its contiguous bucket", () => {
    const plan = planExpertRuns(3, bucketByExpert(routes), "grouped");
    expect(plan.tasks).toEqual([[3, 1, 0, 2], [3, 2, 2, 2], [3, 5, 4, 2]]);
    expect(plan.rows).toEqual([0, 1, 1, 2, 0, 2]);
  });

  it("per-token: token after token, one (token, expert) pair per task, the same pairs as grouped", () => {
    const plan = planExpertRuns(3, bucketByExpert(routes), "per-token");
    expect(plan.rows).toEqual([0, 0, 1, 1, 2, 2]);
    expect(plan.tasks.map(([, e, , n]) => [e, n])).toEqual([[1, 1], [5, 1], [1, 1], [2, 1], [2, 1], [5, 1]]);
    expect(pairs(plan)).toEqual(pairs(planExpertRuns(3, bucketByExpert(routes), "grouped")));
  });

  it("combineSlots names each token's rows and weights; missing pairs point at the zero row with weight 0", () => {
    const plan = planExpertRuns(3, bucketByExpert(routes), "grouped"); // rows [0, 1, 1, 2, 0, 2]
    const all = combineSlots(plan, 3, 2);
    expect([...all.index].map(Number)).toEqual([0, 4, 1, 2, 3, 5]);
    expect([...all.weight].map((w) => +w.toFixed(2))).toEqual([0.3, 0.7, 0.6, 0.4, 0.5, 0.5]);
    // A rank holding only expert 2: tokens 1 and 2 have one pair each, token 0 none.
    const share = planExpertRuns(3, bucketByExpert(routes).filter((b) => b.expert === 2), "grouped");
    const part = combineSlots(share, 3, 2);
    expect([...part.index].map(Number)).toEqual([2, 2, 0, 2, 1, 2]);
    expect([...part.weight].map((w) => +w.toFixed(2))).toEqual([0, 0, 0.4, 0, 0.5, 0]);
    expect(() => combineSlots(plan, 3, 1)).toThrow(/more than 1 expert pairs/);
  });
});

describe("partitionExperts", () => {
  const experts = Array.from({ length: 10 }, (_, i) => 2 * i);

  it("keeps a layer whole while it fits, and otherwise splits it in order into near-equal parts within the bytes", () => {
    expect(partitionExperts(experts, 100, 1000)).toEqual([experts]);
    const parts = partitionExperts(experts, 100, 350); // three experts a part at most → four parts
    expect(parts.map((p) => p.length)).toEqual([3, 3, 2, 2]);
    expect(parts.flat()).toEqual(experts);
  });

  it("gives an expert larger than the bytes a part of its own", () => {
    expect(partitionExperts([4, 7], 500, 100)).toEqual([[4], [7]]);
  });
});
