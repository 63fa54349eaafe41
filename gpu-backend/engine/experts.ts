import type { Checkpoint } from "./checkpoint.js";
import { isMoeLayer, type ModelConfig } from "./config.js";
import type { Route } from "./gate.js";
import { ExpertShard, type ExpertTask } from "./expert-shard.js";
import type { KernelRuntime } from "./kernels/runtime.js";

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

/**
 * Runs routed experts for one MoE layer: `out[row] += Σ weight · expert(hn[row])` over every bucket.
 * Implementations: in-process sessions (below) or expert-parallel ranks on worker threads.
 */
export interface ExpertExecutor {
  run(layer: number, buckets: ExpertBucket[], hn: Float32Array, out: Float32Array, hidden: number): Promise<void>;
  /** How experts are placed, for `/load`. */
  describe(): Record<string, unknown>;
  close(): Promise<void>;
}

/** Rows of `hn` in the given order, as a contiguous `[n, H]` block. */
export function gatherRows(hn: Float32Array, rows: readonly number[], hidden: number): Float32Array {
  const x = new Float32Array(rows.length * hidden);
  rows.forEach((r, i) => x.set(hn.subarray(r * hidden, (r + 1) * hidden), i * hidden));
  return x;
}

/** `out[rows[i]] += weights[i] · y[i]` */
export function scatterAdd(out: Float32Array, y: Float32Array, rows: readonly number[], weights: readonly number[], hidden: number): void {
  for (let i = 0; i < rows.length; i++) {
    const w = weights[i]!;
    const o = rows[i]! * hidden;
    const s = i * hidden;
    for (let d = 0; d < hidden; d++) out[o + d]! += w * y[s + d]!;
  }
}

/** How routed experts run: grouped by expert (the product) or one (token, expert) pair at a time (the baseline). */
export type ExpertMode = "grouped" | "per-token";

/** One thread's share of a layer's routed rows: which rows of the step it takes, in order, and its tasks over them. */
export interface ExpertPlan {
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
 * Routed experts in this thread: one shard holding every expert, run as `planExpertRuns` lays them out —
 * `grouped` as one fused session per MoE layer over all its routed rows (the point of expert-parallel
 * batching), `per-token` as one single-expert session call per (token, expert) pair, the naive loop kept as
 * the benchmark's baseline.
 */
export class LocalExperts implements ExpertExecutor {
  private constructor(private readonly shard: ExpertShard, private readonly mode: ExpertMode) {}

  static async create(runtime: KernelRuntime, ckpt: Checkpoint, cfg: ModelConfig, opts: { mode?: ExpertMode } = {}): Promise<LocalExperts> {
    const mode = opts.mode ?? "grouped";
    const every: [number, number][] = [];
    for (let l = 0; l < cfg.layers; l++) if (isMoeLayer(cfg, l)) for (let e = 0; e < cfg.routedExperts; e++) every.push([l, e]);
    // The shard never loads replicas here, so the checkpoint may close once the model is built.
    return new LocalExperts(await ExpertShard.create(runtime, ckpt, cfg, every, mode === "grouped"), mode);
  }

  async run(layer: number, buckets: ExpertBucket[], hn: Float32Array, out: Float32Array, hidden: number): Promise<void> {
    const plan = planExpertRuns(layer, buckets, this.mode);
    const y = new Float32Array(plan.rows.length * hidden);
    await this.shard.run(plan.tasks, gatherRows(hn, plan.rows, hidden), y);
    scatterAdd(out, y, plan.rows, plan.weights, hidden);
  }

  describe(): Record<string, unknown> {
    return { kind: "local", mode: this.mode, sessions: this.shard.sessionCount };
  }

  close(): Promise<void> {
    return this.shard.close();
  }
}
