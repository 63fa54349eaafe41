import type { Checkpoint } from "./checkpoint.js";
import type { ModelConfig } from "./config.js";
import { buildExpertGroupGraph } from "./kernels/block-graph.js";
import type { KernelRuntime, KernelSession } from "./kernels/runtime.js";
import { combineSlots, type ExpertPlan, type ExpertTask } from "./expert-plan.js";

/**
 * Most weight bytes one fused session holds. onnxruntime refuses a model over 2 GB (DeepSeek-V2-Lite's 64
 * routed experts are 2.2 GB a layer in F32), and creating a session blocks the event loop for as long as it
 * takes to read its weights, so a layer's experts are split into parts of at most this many bytes; an extra
 * run costs ~50 µs against the ≥ 20 ms it takes to stream a full part's weights.
 */
export const MAX_PART_BYTES = 512 * 2 ** 20;

/** One routed expert's weights as a session holds them: gate, up and down projections in F32. */
export function expertWeightBytes(cfg: ModelConfig): number {
  return 3 * cfg.hidden * cfg.moeIntermediate * 4;
}

/** `sorted` in consecutive parts of near-equal size, each within `maxBytes` (an expert larger than that alone). */
export function partitionExperts(sorted: readonly number[], bytesEach: number, maxBytes: number): number[][] {
  const perPart = Math.max(1, Math.floor(maxBytes / bytesEach));
  const parts = Math.ceil(sorted.length / perPart);
  const out: number[][] = [];
  for (let k = 0, at = 0; k < parts; k++) {
    const n = Math.ceil((sorted.length - at) / (parts - k));
    out.push(sorted.slice(at, at + n));
    at += n;
  }
  return out;
}

interface Part {
  experts: readonly number[];
  session: KernelSession;
}

/**
 * The routed experts of one MoE layer that a thread holds, compiled into one session (or, past
 * `MAX_PART_BYTES`, one per part): a step runs each once with every routed row of its experts, sorted by
 * expert. One run instead of one per active expert removes onnxruntime's fixed per-run cost (~50 µs) from
 * every expert and lets the thread pool stream all their weights at once. Gathering the rows and combining
 * the weighted outputs happen in the graph too: in JavaScript they cost ~3 ns per element (about 9% of a
 * 512-token prefill step). Parts run in turn, each adding its experts' outputs to the previous part's result.
 */
export class ExpertGroup {
  /** Each held expert's part, and its position among the part's experts (the graph's `counts` slot). */
  private readonly where: Map<number, { part: number; slot: number }>;

  private constructor(
    readonly layer: number,
    private readonly parts: readonly Part[],
    private readonly hidden: number,
    /** Most (token, expert) pairs a token has: the model's top-k. */
    private readonly slots: number,
  ) {
    this.where = new Map(parts.flatMap((p, part) => p.experts.map((e, slot) => [e, { part, slot }] as const)));
  }

  static async create(runtime: KernelRuntime, ckpt: Checkpoint, cfg: ModelConfig, layer: number, experts: Iterable<number>, maxPartBytes = MAX_PART_BYTES): Promise<ExpertGroup> {
    const sorted = [...new Set(experts)].sort((a, b) => a - b);
    if (sorted.length === 0) throw new Error(`no experts to load for layer ${layer}`);
    const parts: Part[] = [];
    try {
      for (const part of partitionExperts(sorted, expertWeightBytes(cfg), maxPartBytes)) {
        parts.push({ experts: part, session: await runtime.createSession(buildExpertGroupGraph(cfg, ckpt, layer, part), "streaming") });
      }
    } catch (e) {
      for (const p of parts) await p.session.release();
      throw e;
    }
    return new ExpertGroup(layer, parts, cfg.hidden, cfg.topK);
  }

  /** How many sessions hold its experts. */
  get sessionCount(): number {
    return this.parts.length;
  }

  /**
   * `plan` (one layer, tasks in ascending expert order over consecutive rows) through the fused sessions:
   * returns `[T, H]` = `base` + each token's weighted expert outputs, gathered from and combined into `hn`'s
   * rows inside the graphs.
   */
  async run(plan: ExpertPlan, hn: Float32Array, base: Float32Array): Promise<Float32Array> {
    // Each part's tasks and its experts' pair counts, checked whole before anything runs.
    const work = this.parts.map((p) => ({ tasks: [] as ExpertTask[], counts: new BigInt64Array(p.experts.length) }));
    let last = -1;
    for (const task of plan.tasks) {
      const expert = task[1];
      const at = this.where.get(expert);
      if (at === undefined) throw new Error(`expert ${expert} of layer ${this.layer} is not loaded here`);
      if (expert <= last) throw new Error(`expert slices must be in ascending expert order`);
      work[at.part]!.tasks.push(task);
      work[at.part]!.counts[at.slot] = BigInt(task[3]);
      last = expert;
    }
    let out = base;
    for (const [k, { tasks, counts }] of work.entries()) {
      if (tasks.length > 0) out = await this.runPart(this.parts[k]!, tasks, counts, plan, hn, out);
    }
    return out === base ? base.slice() : out;
  }

  /** One part over its tasks, whose rows are one consecutive stretch of the plan's; `counts` per slot of the part. */
  private async runPart(part: Part, tasks: ExpertTask[], counts: BigInt64Array, plan: ExpertPlan, hn: Float32Array, base: Float32Array): Promise<Float32Array> {
    const from = tasks[0]![2];
    const last = tasks.at(-1)!;
    const to = last[2] + last[3];
    const sub = { rows: plan.rows.slice(from, to), weights: plan.weights.slice(from, to) };
    const T = hn.length / this.hidden;
    const { index, weight } = combineSlots(sub, T, this.slots);
    const out = await part.session.run({
      hn: { data: hn, dims: [T, this.hidden] },
      rows: { data: BigInt64Array.from(sub.rows, BigInt), dims: [sub.rows.length] },
      counts: { data: counts, dims: [counts.length] },
      slot_rows: { data: index, dims: [index.length] },
      slot_weights: { data: weight, dims: [T, this.slots, 1] },
      base: { data: base, dims: [T, this.hidden] },
    });
    return out.out!;
  }

  async release(): Promise<void> {
    for (const p of this.parts) await p.session.release();
  }
}
