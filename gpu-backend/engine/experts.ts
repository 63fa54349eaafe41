import type { Checkpoint } from "./checkpoint.js";
import { isMoeLayer, type ModelConfig } from "./config.js";
import type { Route } from "./gate.js";
import { buildExpertGraph } from "./kernels/block-graph.js";
import type { KernelRuntime, KernelSession } from "./kernels/runtime.js";

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
 * Expert sessions in this thread. `grouped` runs each active expert once per step on its whole bucket (the
 * point of expert-parallel batching); `per-token` runs one session call per (token, expert) pair, the naive
 * loop kept as a baseline for the benchmark.
 */
export class LocalExperts implements ExpertExecutor {
  private constructor(
    private readonly sessions: Map<string, KernelSession>,
    private readonly mode: "grouped" | "per-token",
  ) {}

  static async create(
    runtime: KernelRuntime,
    ckpt: Checkpoint,
    cfg: ModelConfig,
    opts: { mode?: "grouped" | "per-token"; owns?: (layer: number, expert: number) => boolean } = {},
  ): Promise<LocalExperts> {
    const sessions = new Map<string, KernelSession>();
    for (let l = 0; l < cfg.layers; l++) {
      if (!isMoeLayer(cfg, l)) continue;
      for (let e = 0; e < cfg.routedExperts; e++) {
        if (opts.owns && !opts.owns(l, e)) continue;
        sessions.set(`${l}:${e}`, await runtime.createSession(buildExpertGraph(cfg, ckpt, l, e), "small"));
      }
    }
    return new LocalExperts(sessions, opts.mode ?? "grouped");
  }

  /** Computes `expert(x)` for a contiguous `[n, H]` block. */
  async apply(layer: number, expert: number, x: Float32Array, hidden: number): Promise<Float32Array> {
    const s = this.sessions.get(`${layer}:${expert}`);
    if (!s) throw new Error(`expert ${expert} of layer ${layer} is not loaded here`);
    return (await s.run({ x: { data: x, dims: [x.length / hidden, hidden] } })).y!;
  }

  async run(layer: number, buckets: ExpertBucket[], hn: Float32Array, out: Float32Array, hidden: number): Promise<void> {
    for (const b of buckets) {
      if (this.mode === "grouped") {
        const y = await this.apply(layer, b.expert, gatherRows(hn, b.rows, hidden), hidden);
        scatterAdd(out, y, b.rows, b.weights, hidden);
      } else {
        for (let i = 0; i < b.rows.length; i++) {
          const y = await this.apply(layer, b.expert, gatherRows(hn, [b.rows[i]!], hidden), hidden);
          scatterAdd(out, y, [b.rows[i]!], [b.weights[i]!], hidden);
        }
      }
    }
  }

  describe(): Record<string, unknown> {
    return { kind: "local", mode: this.mode, sessions: this.sessions.size };
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
  }
}
