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

/** Gathers the bucket's rows of `hn` into a contiguous `[n, H]` block. */
export function gatherRows(hn: Float32Array, rows: number[], hidden: number): Float32Array {
  const x = new Float32Array(rows.length * hidden);
  rows.forEach((r, i) => x.set(hn.subarray(r * hidden, (r + 1) * hidden), i * hidden));
  return x;
}

/** `out[rows[i]] += weights[i] · y[i]` */
export function scatterAdd(out: Float32Array, y: Float32Array, rows: number[], weights: number[], hidden: number): void {
  for (let i = 0; i < rows.length; i++) {
    const w = weights[i]!;
    const o = rows[i]! * hidden;
    const s = i * hidden;
    for (let d = 0; d < hidden; d++) out[o + d]! += w * y[s + d]!;
  }
}

/**
 * Routed experts in this thread: one shard holding every expert. `grouped` runs each MoE layer's experts as
 * one fused session per step over all routed rows sorted by expert, so each active expert's weights are read
 * once for its whole bucket (the point of expert-parallel batching); `per-token` runs one single-expert
 * session call per (token, expert) pair, the naive loop kept as the benchmark's baseline.
 */
export class LocalExperts implements ExpertExecutor {
  private constructor(private readonly shard: ExpertShard, private readonly mode: "grouped" | "per-token") {}

  static async create(
    runtime: KernelRuntime,
    ckpt: Checkpoint,
    cfg: ModelConfig,
    opts: { mode?: "grouped" | "per-token" } = {},
  ): Promise<LocalExperts> {
    const mode = opts.mode ?? "grouped";
    const every: [number, number][] = [];
    for (let l = 0; l < cfg.layers; l++) if (isMoeLayer(cfg, l)) for (let e = 0; e < cfg.routedExperts; e++) every.push([l, e]);
    // The shard never loads replicas here, so the checkpoint may close once the model is built.
    return new LocalExperts(await ExpertShard.create(runtime, ckpt, cfg, every, mode === "grouped"), mode);
  }

  async run(layer: number, buckets: ExpertBucket[], hn: Float32Array, out: Float32Array, hidden: number): Promise<void> {
    const rows = buckets.flatMap((b) => b.rows);
    const tasks: ExpertTask[] = [];
    let row = 0;
    for (const b of buckets) {
      tasks.push([layer, b.expert, row, b.rows.length]);
      row += b.rows.length;
    }
    const y = new Float32Array(rows.length * hidden);
    await this.shard.run(tasks, gatherRows(hn, rows, hidden), y);
    scatterAdd(out, y, rows, buckets.flatMap((b) => b.weights), hidden);
  }

  describe(): Record<string, unknown> {
    return { kind: "local", mode: this.mode, sessions: this.shard.sessionCount };
  }

  close(): Promise<void> {
    return this.shard.close();
  }
}
