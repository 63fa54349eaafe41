import type { Checkpoint } from "./checkpoint.js";
import type { ModelConfig } from "./config.js";
import { buildExpertGroupGraph } from "./kernels/block-graph.js";
import type { KernelRuntime, KernelSession } from "./kernels/runtime.js";

/**
 * The routed experts of one MoE layer that a thread holds, compiled into one session: a step runs it once
 * with every routed row, sorted by expert. One run instead of one per active expert removes onnxruntime's
 * fixed per-run cost (~50 µs) from every expert and lets the thread pool stream all their weights at once.
 */
export class ExpertGroup {
  private readonly slot: Map<number, number>;

  private constructor(readonly layer: number, readonly experts: readonly number[], private readonly session: KernelSession) {
    this.slot = new Map(experts.map((e, k) => [e, k]));
  }

  static async create(runtime: KernelRuntime, ckpt: Checkpoint, cfg: ModelConfig, layer: number, experts: Iterable<number>): Promise<ExpertGroup> {
    const sorted = [...new Set(experts)].sort((a, b) => a - b);
    if (sorted.length === 0) throw new Error(`no experts to load for layer ${layer}`);
    return new ExpertGroup(layer, sorted, await runtime.createSession(buildExpertGroupGraph(cfg, ckpt, layer, sorted), "streaming"));
  }

  /**
   * `slices` name, in ascending expert order, how many consecutive rows of `x` ([N, H]) each expert takes;
   * returns `[N, H]`, each row through its expert.
   */
  async run(x: Float32Array, slices: readonly { expert: number; n: number }[], hidden: number): Promise<Float32Array> {
    const counts = new BigInt64Array(this.experts.length);
    let last = -1;
    for (const { expert, n } of slices) {
      const k = this.slot.get(expert);
      if (k === undefined) throw new Error(`expert ${expert} of layer ${this.layer} is not loaded here`);
      if (k <= last) throw new Error(`expert slices must be in ascending expert order`);
      counts[k] = BigInt(n);
      last = k;
    }
    return (await this.session.run({ x: { data: x, dims: [x.length / hidden, hidden] }, counts: { data: counts, dims: [counts.length] } })).y!;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
