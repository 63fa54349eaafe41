import type { Checkpoint } from "./checkpoint.js";
import type { ModelConfig } from "./config.js";
import { ExpertGroup } from "./expert-group.js";
import type { ExpertPlan } from "./expert-plan.js";
import { buildExpertGraph } from "./kernels/block-graph.js";
import type { KernelRuntime, KernelSession } from "./kernels/runtime.js";

/**
 * Routed experts held by one thread, and how it runs them. Grouped: one fused group per layer over the
 * experts held (rebuilt when a replica arrives). Per-token (the baseline): one session per expert, one run
 * per row. Serves the in-process executor (every expert) and each expert-parallel rank (its shard).
 */
export class ExpertShard {
  private readonly held = new Map<number, Set<number>>();
  private readonly groups = new Map<number, ExpertGroup>();
  private readonly sessions = new Map<string, KernelSession>();
  private zeroRows = new Float32Array(0);

  private constructor(
    private readonly runtime: KernelRuntime,
    private readonly ckpt: Checkpoint,
    private readonly cfg: ModelConfig,
    private readonly grouped: boolean,
  ) {}

  /** `ckpt` must stay open while replicas may still be loaded. */
  static async create(runtime: KernelRuntime, ckpt: Checkpoint, cfg: ModelConfig, owned: [number, number][], grouped: boolean): Promise<ExpertShard> {
    const shard = new ExpertShard(runtime, ckpt, cfg, grouped);
    for (const [l, e] of owned) shard.hold(l, e);
    for (const layer of shard.held.keys()) await shard.build(layer);
    return shard;
  }

  private hold(layer: number, expert: number): void {
    if (!this.held.has(layer)) this.held.set(layer, new Set());
    this.held.get(layer)!.add(expert);
  }

  private async build(layer: number): Promise<void> {
    const experts = this.held.get(layer)!;
    if (this.grouped) {
      const previous = this.groups.get(layer);
      this.groups.set(layer, await ExpertGroup.create(this.runtime, this.ckpt, this.cfg, layer, experts));
      await previous?.release();
      return;
    }
    for (const e of experts) {
      const key = `${layer}:${e}`;
      if (!this.sessions.has(key)) this.sessions.set(key, await this.runtime.createSession(buildExpertGraph(this.cfg, this.ckpt, layer, e), "single"));
    }
  }

  /** Adds a replica of another rank's expert. Callers must not overlap it with a run. */
  async load(layer: number, expert: number): Promise<void> {
    this.hold(layer, expert);
    await this.build(layer);
  }

  /**
   * Runs a plan over the step's post-attention states `hn` ([T, H]): returns `[T, H]` = `base` (zeros when
   * null) + Σ weight · expert(hn[row]) over the plan's (row, expert) pairs. The plan carries one layer.
   */
  async run(plan: ExpertPlan, hn: Float32Array, base: Float32Array | null): Promise<Float32Array> {
    const H = this.cfg.hidden;
    const T = hn.length / H;
    if (plan.tasks.length === 0) return base ? base.slice() : new Float32Array(T * H);
    const layer = plan.tasks[0]![0];
    if (plan.tasks.some((t) => t[0] !== layer)) throw new Error("one run carries one layer's tasks");
    const group = this.groups.get(layer);
    if (group) return group.run(plan, ownBuffer(hn), base ? ownBuffer(base) : this.zeros(T * H));
    // The baseline: one session run per (row, expert) pair, each output added to its token in turn.
    const out = base ? base.slice() : new Float32Array(T * H);
    const x = ownBuffer(hn);
    for (const [l, expert, first, n] of plan.tasks) {
      const s = this.sessions.get(`${l}:${expert}`);
      if (!s) throw new Error(`expert ${expert} of layer ${l} is not loaded here`);
      for (let i = first; i < first + n; i++) {
        const row = plan.rows[i]!;
        const y = (await s.run({ x: { data: x.subarray(row * H, (row + 1) * H), dims: [1, H] } })).y!;
        const w = plan.weights[i]!;
        for (let d = 0; d < H; d++) out[row * H + d]! += w * y[d]!;
      }
    }
    return out;
  }

  /** A zero `base` for ranks that return only their share (onnxruntime never writes its inputs). */
  private zeros(n: number): Float32Array {
    if (this.zeroRows.length < n) this.zeroRows = new Float32Array(Math.max(n, 2 * this.zeroRows.length));
    return this.zeroRows.subarray(0, n);
  }

  /** How many sessions hold its experts (for `/load`). */
  get sessionCount(): number {
    let n = this.sessions.size;
    for (const g of this.groups.values()) n += g.sessionCount;
    return n;
  }

  async close(): Promise<void> {
    for (const g of this.groups.values()) await g.release();
    for (const s of this.sessions.values()) await s.release();
  }
}

/** `a` itself, or a copy when it lies in shared memory (onnxruntime reads ordinary buffers). */
function ownBuffer(a: Float32Array): Float32Array {
  return a.buffer instanceof SharedArrayBuffer ? a.slice() : a;
}
