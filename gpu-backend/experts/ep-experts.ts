import type { Worker } from "node:worker_threads";
import { isMoeLayer, type ModelConfig } from "../engine/config.js";
import { planExpertRuns, type ExpertBucket, type ExpertPlan } from "../engine/expert-plan.js";
import type { ExpertExecutor } from "../engine/experts.js";
import { Checkpoint } from "../engine/checkpoint.js";
import { createRuntime } from "../engine/kernels/runtime.js";
import { ExpertShard } from "../engine/expert-shard.js";
import { spawnSiblingWorker } from "../threads/spawn-worker.js";
import type { FromRank, RankInit, ToRank } from "./ep-protocol.js";

export interface EpOptions {
  model: string;
  config: ModelConfig;
  ranks: number;
  backend: "node" | "web";
  /** Replicas of hot experts per MoE layer (the EPLB idea); 0 = off. */
  replicas: number;
  grouped: boolean;
  /** Runs of a layer between replica decisions. */
  rebalanceEvery?: number;
}

/** One expert-parallel rank as the main thread sees it: a run over the step's states, replica loads. */
interface Rank {
  /** Its share of a layer: `[T, H]` = `base` (zeros when null) + its pairs' weighted expert outputs. */
  run(plan: ExpertPlan, hn: Float32Array, base: Float32Array | null): Promise<Float32Array>;
  load(layer: number, expert: number): Promise<void>;
  close(): Promise<void>;
}

/** `a` if it holds `n` floats, else a new shared buffer of at least twice its size (contents not kept). */
function sharedCapacity(a: Float32Array<SharedArrayBuffer>, n: number): Float32Array<SharedArrayBuffer> {
  return a.length >= n ? a : new Float32Array(new SharedArrayBuffer(Math.max(n, 2 * a.length) * 4));
}

/** The step's post-attention states in shared memory: copied in once per layer, read by every worker rank. */
class SharedStates {
  data = new Float32Array(new SharedArrayBuffer(4));
  /** Floats of the layer's states last written. */
  length = 0;

  write(hn: Float32Array): void {
    this.data = sharedCapacity(this.data, hn.length);
    this.data.set(hn);
    this.length = hn.length;
  }
}

/** A rank on a worker thread: states and results cross in shared memory, plans as messages. */
class WorkerRank implements Rank {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private output = new Float32Array(new SharedArrayBuffer(4));
  /** The states buffer this worker was last given. */
  private sentStates: ArrayBufferLike | null = null;

  constructor(private readonly worker: Worker, private readonly hidden: number, private readonly states: SharedStates) {
    worker.on("message", (m: FromRank) => {
      if (m.type === "ready") return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === "error") p.reject(new Error(m.message));
      else p.resolve();
    });
    worker.on("error", (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  /** `hn` must already be in the shared states. The result is a view of shared memory, valid until the next run. */
  async run(plan: ExpertPlan, hn: Float32Array, base: Float32Array | null): Promise<Float32Array> {
    if (base) throw new Error("worker ranks return their share alone");
    if (this.states.length !== hn.length) throw new Error("the step's states are not in shared memory");
    if (this.sentStates !== this.states.data.buffer || this.output.length < hn.length) {
      this.output = sharedCapacity(this.output, hn.length);
      this.sentStates = this.states.data.buffer;
      this.worker.postMessage({ type: "buffers", input: this.states.data.buffer, output: this.output.buffer } satisfies ToRank);
    }
    await this.request((id) => ({ type: "run", id, plan, tokens: hn.length / this.hidden }));
    return this.output.subarray(0, hn.length);
  }

  load(layer: number, expert: number): Promise<void> {
    return this.request((id) => ({ type: "load", id, layer, expert }));
  }

  private request(make: (id: number) => ToRank): Promise<void> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(make(id));
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * Rank 0 lives in the main thread, which would otherwise wait idle while the workers compute: N ranks use
 * N threads (one per core), not N + 1, and a step sends one message fewer per layer.
 */
class MainThreadRank implements Rank {
  constructor(private readonly shard: ExpertShard, private readonly ckpt: Checkpoint) {}

  run(plan: ExpertPlan, hn: Float32Array, base: Float32Array | null): Promise<Float32Array> {
    return this.shard.run(plan, hn, base);
  }

  load(layer: number, expert: number): Promise<void> {
    return this.shard.load(layer, expert);
  }

  async close(): Promise<void> {
    await this.shard.close();
    this.ckpt.close();
  }
}

/**
 * Routed experts split over `ranks` ranks (rank 0 in the main thread, the others on worker threads), each
 * owning a contiguous shard of every MoE layer's experts. Per layer and step, each rank gets the step's hidden
 * states (workers through shared memory) and a plan of its (token, expert) pairs; the ranks compute in
 * parallel, each returning its weighted share of every token's output, and the main thread adds the shares.
 * With replicas enabled, the hottest experts are also loaded on the least-loaded ranks and their buckets split.
 */
export class EpExperts implements ExpertExecutor {
  /** holders[layer][expert] = ranks that hold the expert (owner first). */
  private readonly holders: number[][][];
  private readonly load: Float64Array[];
  private readonly runs: number[];

  private constructor(private readonly ranks: Rank[], private readonly opts: EpOptions, private readonly states: SharedStates) {
    const { config: c } = opts;
    this.holders = Array.from({ length: c.layers }, () => Array.from({ length: c.routedExperts }, (_, e) => [ownerOf(e, c.routedExperts, ranks.length)]));
    this.load = Array.from({ length: c.layers }, () => new Float64Array(c.routedExperts));
    this.runs = new Array(c.layers).fill(0);
  }

  static async start(opts: EpOptions): Promise<EpExperts> {
    const c = opts.config;
    const ownedBy = (r: number) => {
      const owned: [number, number][] = [];
      for (let l = 0; l < c.layers; l++) {
        if (!isMoeLayer(c, l)) continue;
        for (let e = 0; e < c.routedExperts; e++) if (ownerOf(e, c.routedExperts, opts.ranks) === r) owned.push([l, e]);
      }
      return owned;
    };
    const states = new SharedStates();
    const ranks: Rank[] = await Promise.all(
      Array.from({ length: opts.ranks }, async (_, r): Promise<Rank> => {
        if (r === 0) {
          // One thread per rank: the main thread's shard runs single-threaded, like the workers'. Its
          // checkpoint stays open to load replicas later.
          const runtime = await createRuntime({ backend: opts.backend, threads: 1 });
          const ckpt = new Checkpoint(opts.model);
          return new MainThreadRank(await ExpertShard.create(runtime, ckpt, c, ownedBy(0), opts.grouped), ckpt);
        }
        const init: RankInit = { model: opts.model, rank: r, backend: opts.backend, owned: ownedBy(r), grouped: opts.grouped };
        const worker = spawnSiblingWorker(import.meta.url, "ep-rank", init);
        await new Promise<void>((resolve, reject) => {
          worker.once("message", (m: FromRank) => (m.type === "ready" ? resolve() : reject(new Error("rank failed to start"))));
          worker.once("error", reject);
        });
        return new WorkerRank(worker, c.hidden, states);
      }),
    );
    return new EpExperts(ranks, opts, states);
  }

  /** Experts (per layer) held by more than their owner. */
  replicated(layer: number): number[] {
    return this.holders[layer]!.flatMap((h, e) => (h.length > 1 ? [e] : []));
  }

  async run(layer: number, buckets: ExpertBucket[], hn: Float32Array, out: Float32Array): Promise<void> {
    // Split each bucket across its holders; each rank then gets its rows laid out as its mode runs them.
    const perRank: ExpertBucket[][] = this.ranks.map(() => []);
    for (const b of buckets) {
      this.load[layer]![b.expert]! += b.rows.length;
      const hs = this.holders[layer]![b.expert]!;
      const share = Math.ceil(b.rows.length / hs.length);
      hs.forEach((r, k) => {
        const [from, to] = [k * share, Math.min(b.rows.length, (k + 1) * share)];
        if (to > from) perRank[r]!.push(hs.length === 1 ? b : { expert: b.expert, rows: b.rows.slice(from, to), weights: b.weights.slice(from, to) });
      });
    }
    const mode = this.opts.grouped ? "grouped" : "per-token";
    // One copy of the states into shared memory serves every worker rank.
    if (perRank.some((parts, r) => r > 0 && parts.length > 0)) this.states.write(hn);
    // Workers first, the main thread's own shard last: its run occupies this thread while they compute.
    // Rank 0 adds its share onto `out` inside its run; the workers' shares are added after, in rank order.
    const shares = await Promise.all(
      perRank.map((_, r) => r).reverse().map(async (r) => {
        if (perRank[r]!.length === 0) return null;
        return this.ranks[r]!.run(planExpertRuns(layer, perRank[r]!, mode), hn, r === 0 ? out : null);
      }),
    );
    shares.reverse();
    if (shares[0]) out.set(shares[0]);
    for (const share of shares.slice(1)) {
      if (!share) continue;
      for (let i = 0; i < out.length; i++) out[i]! += share[i]!;
    }
    if (this.opts.replicas > 0 && ++this.runs[layer]! % (this.opts.rebalanceEvery ?? 200) === 0) await this.rebalance(layer);
  }

  /**
   * Replicates the hottest not-yet-replicated experts of a layer onto the rank with the least load in that
   * layer, up to `replicas` per layer.
   */
  private async rebalance(layer: number): Promise<void> {
    const load = this.load[layer]!;
    const holders = this.holders[layer]!;
    const rankLoad = new Float64Array(this.ranks.length);
    holders.forEach((h, e) => h.forEach((r) => (rankLoad[r]! += load[e]! / h.length)));
    const hot = [...load.keys()].sort((a, b) => load[b]! - load[a]!);
    let budget = this.opts.replicas - this.replicated(layer).length;
    for (const e of hot) {
      if (budget <= 0) break;
      const h = holders[e]!;
      if (h.length > 1) continue;
      let target = -1;
      for (let r = 0; r < this.ranks.length; r++) if (!h.includes(r) && (target < 0 || rankLoad[r]! < rankLoad[target]!)) target = r;
      if (target < 0) break;
      await this.ranks[target]!.load(layer, e);
      h.push(target);
      rankLoad[target]! += load[e]! / 2;
      budget--;
    }
  }

  describe(): Record<string, unknown> {
    const replicas: Record<number, number[]> = {};
    this.holders.forEach((_, layer) => {
      const r = this.replicated(layer);
      if (r.length) replicas[layer] = r;
    });
    return { kind: "expert-parallel", ranks: this.ranks.length, grouped: this.opts.grouped, replicas };
  }

  async close(): Promise<void> {
    await Promise.all(this.ranks.map((r) => r.close()));
  }
}

/** Contiguous shards: rank r owns experts [r·E/N, (r+1)·E/N). */
export function ownerOf(expert: number, experts: number, ranks: number): number {
  return Math.min(ranks - 1, Math.floor((expert * ranks) / experts));
}
