import type { Checkpoint } from "./checkpoint.js";
import { isMoeLayer, type ModelConfig } from "./config.js";
import type { Route } from "./gate.js";
import { ExpertGroup } from "./expert-group.js";
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
 * Routed experts in this thread. `grouped` runs each MoE layer's experts as one fused session per step over
 * all routed rows sorted by expert, so each active expert's weights are read once for its whole bucket (the
 * point of expert-parallel batching); `per-token` runs one single-expert session call per (token, expert)
 * pair, the naive loop kept as the benchmark's baseline.
 */
export class LocalExperts implements ExpertExecutor {
  private constructor(
    private readonly groups: Map<number, ExpertGroup>,
    private readonly sessions: Map<string, KernelSession>,
  ) {}

  static async create(
    runtime: KernelRuntime,
    ckpt: Checkpoint,
    cfg: ModelConfig,
    opts: { mode?: "grouped" | "per-token" } = {},
  ): Promise<LocalExperts> {
    const groups = new Map<number, ExpertGroup>();
    const sessions = new Map<string, KernelSession>();
    const all = Array.from({ length: cfg.routedExperts }, (_, e) => e);
    for (let l = 0; l < cfg.layers; l++) {
      if (!isMoeLayer(cfg, l)) continue;
      if ((opts.mode ?? "grouped") === "grouped") {
        groups.set(l, await ExpertGroup.create(runtime, ckpt, cfg, l, all));
        continue;
      }
      for (const e of all) sessions.set(`${l}:${e}`, await runtime.createSession(buildExpertGraph(cfg, ckpt, l, e), "single"));
    }
    return new LocalExperts(groups, sessions);
  }

  async run(layer: number, buckets: ExpertBucket[], hn: Float32Array, out: Float32Array, hidden: number): Promise<void> {
    const group = this.groups.get(layer);
    if (group) {
      const rows = buckets.flatMap((b) => b.rows);
      const y = await group.run(gatherRows(hn, rows, hidden), buckets.map((b) => ({ expert: b.expert, n: b.rows.length })), hidden);
      scatterAdd(out, y, rows, buckets.flatMap((b) => b.weights), hidden);
      return;
    }
    for (const b of buckets) {
      const s = this.sessions.get(`${layer}:${b.expert}`);
      if (!s) throw new Error(`expert ${b.expert} of layer ${layer} is not loaded here`);
      for (let i = 0; i < b.rows.length; i++) {
        const y = (await s.run({ x: { data: gatherRows(hn, [b.rows[i]!], hidden), dims: [1, hidden] } })).y!;
        scatterAdd(out, y, [b.rows[i]!], [b.weights[i]!], hidden);
      }
    }
  }

  describe(): Record<string, unknown> {
    return this.groups.size > 0
      ? { kind: "local", mode: "grouped", sessions: this.groups.size }
      : { kind: "local", mode: "per-token", sessions: this.sessions.size };
  }

  async close(): Promise<void> {
    for (const g of this.groups.values()) await g.release();
    for (const s of this.sessions.values()) await s.release();
  }
}
