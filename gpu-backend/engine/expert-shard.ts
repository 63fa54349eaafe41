import type { Checkpoint } from "./checkpoint.js";
import type { ModelConfig } from "./config.js";
import { ExpertGroup } from "./expert-group.js";
import { buildExpertGraph } from "./kernels/block-graph.js";
import type { KernelRuntime, KernelSession } from "./kernels/runtime.js";

/** One expert's slice of a run's input/output rows: rows [row, row + n). */
export type ExpertTask = [layer: number, expert: number, row: number, n: number];

/**
 * Routed experts held by one thread, and how it runs them. Grouped: one fused session per layer over the
 * experts held (rebuilt when a replica arrives). Per-token (the baseline): one session per expert, one run
 * per row. Serves the in-process executor (every expert) and each expert-parallel rank (its shard).
 */
export class ExpertShard {
  private readonly held = new Map<number, Set<number>>();
  private readonly groups = new Map<number, ExpertGroup>();
  private readonly sessions = new Map<string, KernelSession>();

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

  /** Tasks name consecutive row ranges of `input` (one layer per run, ascending expert order); rows of `output` get the results. */
  async run(tasks: readonly ExpertTask[], input: Float32Array, output: Float32Array): Promise<void> {
    if (tasks.length === 0) return;
    const H = this.cfg.hidden;
    const [layer, , first] = tasks[0]!;
    const group = this.groups.get(layer);
    if (group) {
      if (tasks.some((t) => t[0] !== layer)) throw new Error("one run carries one layer's tasks");
      const rows = tasks.reduce((a, t) => a + t[3], 0);
      output.set(await group.run(rowsOf(input, first, rows, H), tasks.map(([, expert, , n]) => ({ expert, n })), H), first * H);
      return;
    }
    for (const [l, expert, row, n] of tasks) {
      const s = this.sessions.get(`${l}:${expert}`);
      if (!s) throw new Error(`expert ${expert} of layer ${l} is not loaded here`);
      for (let r = row; r < row + n; r++) output.set((await s.run({ x: { data: rowsOf(input, r, 1, H), dims: [1, H] } })).y!, r * H);
    }
  }

  /** How many sessions hold its experts (for `/load`). */
  get sessionCount(): number {
    return this.groups.size + this.sessions.size;
  }

  async close(): Promise<void> {
    for (const g of this.groups.values()) await g.release();
    for (const s of this.sessions.values()) await s.release();
  }
}

/** Rows [first, first + n) of `input`: a view, or a copy when it lies in shared memory (onnxruntime reads ordinary buffers). */
function rowsOf(input: Float32Array, first: number, n: number, hidden: number): Float32Array {
  const [a, b] = [first * hidden, (first + n) * hidden];
  return input.buffer instanceof SharedArrayBuffer ? input.slice(a, b) : input.subarray(a, b);
}
