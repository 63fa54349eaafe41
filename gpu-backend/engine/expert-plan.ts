import type { Route } from "./gate.js";

/** The (token, weight) pairs of one step routed to one expert. */
export interface ExpertBucket {
  expert: number;
  rows: number[];
  weights: number[];
}

/** Groups a step's routing decisions by expert: each active expert then runs once on all its tokens. */
export function bucketByExpert(routes: Route[]): ExpertBucket[] {
  const byExpert = new Map<number, ExpertBucket>();
  routes.forEach((r, row) => {
    for (let k = 0; k < r.experts.length; k++) {
      const e = r.experts[k]!;
      let b = byExpert.get(e);
      if (!b) byExpert.set(e, (b = { expert: e, rows: [], weights: [] }));
      b.rows.push(row);
      b.weights.push(r.weights[k]!);
    }
  });
  return [...byExpert.values()].sort((a, b) => a.expert - b.expert);
}

/** One expert's slice of a plan's rows: rows [row, row + n). */
export type ExpertTask = [layer: number, expert: number, row: number, n: number];

/** How routed experts run: grouped by expert (the product) or one (token, expert) pair at a time (the baseline). */
export type ExpertMode = "grouped" | "per-token";

/** One thread's share of a layer's routed rows: which rows of the step it takes, in order, and its tasks over them. */
export interface ExpertPlan {
  /** Step rows (tokens) in run order, and the gate weight of each (token, expert) pair. */
  rows: number[];
  weights: number[];
  tasks: ExpertTask[];
}

/**
 * Lays out one layer's (token, expert) pairs for a shard. `grouped`: bucket after bucket in ascending expert
 * order, one task per expert, so each expert's weights are read once for all its tokens. `per-token`: token
 * after token, each of its experts in turn, one row per task: the loop grouping replaces, in which consecutive
 * runs read different experts' weights.
 */
export function planExpertRuns(layer: number, buckets: readonly ExpertBucket[], mode: ExpertMode): ExpertPlan {
  const plan: ExpertPlan = { rows: [], weights: [], tasks: [] };
  if (mode === "grouped") {
    for (const b of buckets) {
      plan.tasks.push([layer, b.expert, plan.rows.length, b.rows.length]);
      plan.rows.push(...b.rows);
      plan.weights.push(...b.weights);
    }
    return plan;
  }
  const pairs = buckets.flatMap((b) => b.rows.map((row, i) => ({ row, expert: b.expert, weight: b.weights[i]! })));
  pairs.sort((a, b) => a.row - b.row || a.expert - b.expert);
  for (const p of pairs) {
    plan.tasks.push([layer, p.expert, plan.rows.length, 1]);
    plan.rows.push(p.row);
    plan.weights.push(p.weight);
  }
  return plan;
}

/**
 * Where each token's weighted expert outputs come from, so the sum over a token's experts is a dense
 * reduction instead of a scatter: slot `t·slots + j` names the `j`-th plan row of token `t` (an index into
 * the run's output rows) with its gate weight, or index `plan.rows.length` (a zero row) with weight 0 when
 * the token has fewer pairs in this plan (another rank holds them).
 */
export function combineSlots(plan: Pick<ExpertPlan, "rows" | "weights">, tokens: number, slots: number): { index: BigInt64Array; weight: Float32Array } {
  const index = new BigInt64Array(tokens * slots).fill(BigInt(plan.rows.length));
  const weight = new Float32Array(tokens * slots);
  const used = new Uint16Array(tokens);
  plan.rows.forEach((t, i) => {
    const j = used[t]!++;
    if (j >= slots) throw new Error(`token ${t} has more than ${slots} expert pairs`);
    index[t * slots + j] = BigInt(i);
    weight[t * slots + j] = plan.weights[i]!;
  });
  return { index, weight };
}
