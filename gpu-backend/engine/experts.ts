import type { Checkpoint } from "./checkpoint.js";
import { isMoeLayer, type ModelConfig } from "./config.js";
import { ExpertShard } from "./expert-shard.js";
import { planExpertRuns, type ExpertBucket, type ExpertMode } from "./expert-plan.js";
import type { KernelRuntime } from "./kernels/runtime.js";

/**
 * Runs routed experts for one MoE layer: `out[row] += Σ weight · expert(hn[row])` over every bucket.
 * Implementations: in-process sessions (below) or expert-parallel ranks on worker threads.
 */
export interface ExpertExecutor {
  run(layer: number, buckets: ExpertBucket[], hn: Float32Array, out: Float32Array): Promise<void>;
  /** How experts are placed, for `/load`. */
  describe(): Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * Routed experts in this thread: one shard holding every expert, run as `planExpertRuns` lays them out —
 * `grouped` as one fused run per MoE layer over all its routed rows (the point of expert-parallel batching;
 * layers past `MAX_PART_BYTES` of weights take a run per part), `per-token` as one single-expert session call
 * per (token, expert) pair, the naive loop kept as the benchmark's baseline.
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

  async run(layer: number, buckets: ExpertBucket[], hn: Float32Array, out: Float32Array): Promise<void> {
    out.set(await this.shard.run(planExpertRuns(layer, buckets, this.mode), hn, out));
  }

  describe(): Record<string, unknown> {
    return { kind: "local", mode: this.mode, sessions: this.shard.sessionCount };
  }

  close(): Promise<void> {
    return this.shard.close();
  }
}
