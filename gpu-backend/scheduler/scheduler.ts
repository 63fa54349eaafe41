import type { DeepSeekModel, SequenceStep } from "../engine/model.js";
import { BlockPool, blockHash } from "../kv/block-pool.js";
import { LatentStore } from "../kv/paged-cache.js";
import { unscored, type Sampled } from "../sampling/sampler.js";
import { Sequence, type FinishReason, type SequenceSpec } from "./sequence.js";
import { TenantQueues } from "./tenant-queues.js";

export interface SchedulerOptions {
  /** Tokens per step across decodes and prefill chunks. */
  maxBatchTokens: number;
  maxRunning: number;
  numBlocks: number;
  blockSize: number;
}

/** What a step did, reported after it (see `Scheduler.onStep`). */
export interface StepReport {
  /** Tokens sampled (one per sequence that reached a new token). */
  sampled: number;
  /** Tokens the model computed: decode tokens and prefill chunks. */
  tokens: number;
  seconds: number;
  /** The model's forward pass alone. */
  forwardSeconds: number;
}

export interface SchedulerStats {
  waiting: number;
  running: number;
  blocks: { total: number; used: number; free: number; cached: number; block_size: number };
  promptTokens: number;
  generatedTokens: number;
  cachedTokens: number;
  preemptions: number;
  steps: number;
}

/**
 * Iteration-level continuous batching. Every step: each running sequence that is decoding contributes one
 * token; the rest of the token budget goes to prefill chunks of admitted sequences, then to new admissions
 * (round-robin across tenants, only when the prompt's KV blocks are available). When a decode needs a block
 * and none is left, the most recently admitted sequence is preempted: its blocks are freed and it is
 * recomputed later from its tokens so far.
 */
export class Scheduler {
  readonly pool: BlockPool;
  readonly store: LatentStore;
  private readonly queues = new TenantQueues<Sequence>();
  /** Preempted sequences go first when blocks free up. */
  private readonly resumed: Sequence[] = [];
  private running: Sequence[] = [];
  private arrivals = 0;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  private readonly totals = { promptTokens: 0, generatedTokens: 0, cachedTokens: 0, preemptions: 0, steps: 0 };
  /** Called after each step that ran the model. */
  onStep: ((report: StepReport) => void) | null = null;

  constructor(private readonly model: DeepSeekModel, private readonly opts: SchedulerOptions) {
    this.pool = new BlockPool(opts.numBlocks, opts.blockSize);
    this.store = new LatentStore(model.config.layers, opts.numBlocks, opts.blockSize, model.cacheWidth);
  }

  /** Largest prompt + completion a single sequence can ever hold in this KV budget. */
  get maxSequenceTokens(): number {
    return Math.min(this.opts.numBlocks * this.opts.blockSize, this.model.config.maxPositions);
  }

  /** Queues a sequence; `front` puts it ahead of its tenant's other waiting sequences. */
  submit(spec: SequenceSpec, front = false): Sequence {
    if (this.stopping) throw new Error("scheduler is stopping");
    const seq = new Sequence(spec, this.arrivals++);
    seq.attach(this.store);
    this.queues.push(spec.tenant, seq, front);
    this.kick();
    return seq;
  }

  /**
   * Full blocks of a prompt that a sequence admitted after it was computed takes from the prefix cache. The
   * last prompt token always runs through the model (it gives the logits), so its block never counts.
   */
  prefixBlocks(promptLength: number): number {
    return Math.max(0, Math.floor((promptLength - 1) / this.opts.blockSize));
  }

  /**
   * Cancels a sequence. A waiting one leaves at once; a running one keeps its blocks until the current step
   * ends (the model may be writing into them) and is freed at the next step boundary.
   */
  cancel(seq: Sequence): void {
    if (seq.finished) return;
    seq.cancelled = true;
    if (!this.running.includes(seq)) {
      this.dequeue(seq);
      this.finish(seq, "cancelled");
    }
    this.kick();
  }

  get idle(): boolean {
    return this.running.length === 0 && this.resumed.length === 0 && this.queues.size === 0;
  }

  /** Sequences not yet running: queued, or preempted and waiting to resume. */
  get waiting(): number {
    return this.queues.size + this.resumed.length;
  }

  /** Sequences of one tenant queued for admission. */
  waitingFor(tenant: string): number {
    return this.queues.sizeOf(tenant);
  }

  stats(): SchedulerStats {
    return {
      waiting: this.waiting,
      running: this.running.length,
      blocks: {
        total: this.pool.numBlocks,
        used: this.pool.used,
        free: this.pool.available,
        cached: this.pool.cachedBlocks,
        block_size: this.opts.blockSize,
      },
      ...this.totals,
    };
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops after the current step; unfinished sequences end as cancelled. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.kick();
    await this.loop;
  }

  private kick(): void {
    this.wake?.();
    this.wake = null;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.idle) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      try {
        await this.step();
      } catch (e) {
        // A failed step must not take the pod down: fail what was in flight, keep serving.
        for (const s of [...this.running]) this.finish(s, "error", e as Error);
      }
      // Let I/O (new requests, client disconnects) in between steps.
      await new Promise((r) => setImmediate(r));
    }
    for (const s of [...this.running, ...this.resumed, ...this.queues.drain()]) this.finish(s, "cancelled");
  }

  private async step(): Promise<void> {
    const started = performance.now();
    this.reapCancelled();
    let work: { seq: Sequence; n: number }[] = [];

    // 1. One token for every decoding sequence, allocating a block where a new one starts. A preemption
    //    may hit a sequence already picked for this step: it leaves the step too.
    for (const seq of [...this.running]) {
      if (seq.pending !== 1 || !this.running.includes(seq)) continue;
      const preemptions = this.totals.preemptions;
      const ok = this.ensureBlocks(seq, seq.computed + 1);
      if (this.totals.preemptions !== preemptions) work = work.filter((w) => this.running.includes(w.seq));
      if (ok) work.push({ seq, n: 1 });
    }
    let budget = this.opts.maxBatchTokens - work.length;
    // 2. Continue prefills already admitted, oldest first.
    for (const seq of this.running) {
      if (budget <= 0) break;
      if (seq.pending <= 1 || work.some((w) => w.seq === seq)) continue;
      const n = Math.min(seq.pending, budget);
      work.push({ seq, n });
      budget -= n;
    }
    // 3. Admit waiting sequences while budget, slots and blocks allow.
    while (budget > 0 && this.running.length < this.opts.maxRunning) {
      const seq = this.resumed[0] ?? this.queues.peek();
      if (!seq) break;
      if (seq.cancelled) {
        this.dequeue(seq);
        this.finish(seq, "cancelled");
        continue;
      }
      if (!this.admit(seq)) break;
      this.dequeue(seq);
      this.running.push(seq);
      const n = Math.min(seq.pending, budget);
      work.push({ seq, n });
      budget -= n;
    }
    if (work.length === 0) {
      if (this.running.length === 0 && !this.idle) {
        // Nothing fits even in an empty pool: the head of the queue can never run.
        const seq = this.resumed[0] ?? this.queues.peek()!;
        this.dequeue(seq);
        this.finish(seq, "error", new Error("the request needs more KV cache than this pod has"));
      }
      return;
    }

    const steps: SequenceStep[] = work.map(({ seq, n }) => {
      const logits = seq.scoringPrompt ? "all" : seq.computed + n === seq.tokens.length && !seq.promptOnly ? "last" : "none";
      return {
        tokens: seq.tokens.slice(seq.computed, seq.computed + n),
        past: seq.computed,
        cache: seq.cache!,
        logits,
        temperature: seq.sampler.headTemperature(),
        rawLogits: seq.scoringPrompt || seq.sampler.needsRawLogits(),
        // The step samples this sequence: let the head pick when it can (it then hands back no [vocab] row).
        draw: logits === "last" ? seq.sampler.headDraw() : null,
        argmax: logits === "last" && seq.sampler.headArgmax(),
      };
    });
    // The outputs are read below, before this scheduler's next step: the model may reuse their buffers.
    const forwardStarted = performance.now();
    const { logits, probs, picked } = await this.model.forward(steps, { reuseOutputs: true });
    const forwardSeconds = (performance.now() - forwardStarted) / 1000;
    this.totals.steps++;

    const V = this.model.config.vocabSize;
    // The last row predicts the next token ("all" brings one row per token of the chunk).
    const lastRow = (a: Float32Array) => a.subarray(a.length - V);
    let sampled = 0;
    work.forEach(({ seq, n }, i) => {
      const l = logits[i];
      const p = probs[i];
      const d = picked[i];
      if (l && steps[i]!.logits === "all") seq.scorePrompt(l, seq.computed, V);
      seq.computed += n;
      this.publishFullBlocks(seq);
      if (seq.cancelled || seq.computed < seq.tokens.length) return;
      if (seq.promptOnly) {
        this.finish(seq, seq.endPrompt());
        return;
      }
      const s = d != null ? unscored(d) : seq.sampler.sample(l ? lastRow(l) : null, p ? lastRow(p) : p);
      const reason = this.sampleNext(seq, s);
      sampled++;
      if (reason) this.finish(seq, reason);
    });
    this.onStep?.({ sampled, tokens: steps.reduce((a, s) => a + s.tokens.length, 0), seconds: (performance.now() - started) / 1000, forwardSeconds });
  }

  private sampleNext(seq: Sequence, s: Sampled): FinishReason | null {
    this.totals.generatedTokens++;
    const reason = seq.accept(s);
    if (reason) return reason;
    if (seq.tokens.length >= this.maxSequenceTokens) return "length";
    return null;
  }

  /** Takes prefix-cache hits for full blocks and allocates the rest of the sequence's current tokens. */
  private admit(seq: Sequence): boolean {
    const bs = this.opts.blockSize;
    const needTotal = Math.ceil(seq.tokens.length / bs);
    // A prompt being scored needs logits at every position, so it takes nothing from the cache.
    const cacheable = seq.scoringPrompt ? 0 : this.prefixBlocks(seq.tokens.length);
    const hits: number[] = [];
    const hashes: string[] = [];
    let prev = seq.spec.salt;
    for (let i = 0; i < cacheable; i++) {
      const h = blockHash(prev, seq.tokens.slice(i * bs, (i + 1) * bs));
      const b = this.pool.lookup(h);
      if (b === null) break;
      hits.push(b);
      hashes.push(h);
      prev = h;
    }
    if (this.pool.available < needTotal - hits.length) {
      for (const b of hits) this.pool.release(b);
      return false;
    }
    seq.blocks.push(...hits);
    seq.blockHashes.push(...hashes);
    for (let i = hits.length; i < needTotal; i++) seq.blocks.push(this.takeBlock()!);
    seq.computed = hits.length * bs;
    if (!seq.admittedOnce) {
      seq.admittedOnce = true;
      seq.cachedPromptTokens = Math.min(seq.computed, seq.promptLength);
      this.totals.promptTokens += seq.promptLength;
      this.totals.cachedTokens += seq.cachedPromptTokens;
    }
    return true;
  }

  /** A block for one sequence's own rows, cleared of its previous owner's (see `LatentStore.clear`); null when none is left. */
  private takeBlock(): number | null {
    const b = this.pool.allocate();
    if (b !== null) this.store.clear(b);
    return b;
  }

  /** Makes sure `seq` has blocks for `positions` tokens, preempting the newest sequences if needed. */
  private ensureBlocks(seq: Sequence, positions: number): boolean {
    const bs = this.opts.blockSize;
    while (seq.blocks.length * bs < positions) {
      const b = this.takeBlock();
      if (b !== null) {
        seq.blocks.push(b);
        continue;
      }
      const victim = this.running.reduce((a, s) => (s.arrival > a.arrival ? s : a));
      this.preempt(victim);
      if (victim === seq) return false;
    }
    return true;
  }

  private preempt(seq: Sequence): void {
    this.totals.preemptions++;
    this.releaseBlocks(seq);
    seq.computed = 0;
    this.running = this.running.filter((s) => s !== seq);
    this.resumed.push(seq);
    this.resumed.sort((a, b) => a.arrival - b.arrival);
  }

  /** Registers newly completed full blocks in the prefix cache under the sequence's hash chain. */
  private publishFullBlocks(seq: Sequence): void {
    const bs = this.opts.blockSize;
    const full = Math.floor(seq.computed / bs);
    for (let i = seq.blockHashes.length; i < full; i++) {
      const h = blockHash(seq.blockHashes[i - 1] ?? seq.spec.salt, seq.tokens.slice(i * bs, (i + 1) * bs));
      seq.blockHashes.push(h);
      this.pool.register(seq.blocks[i]!, h);
    }
  }

  private releaseBlocks(seq: Sequence): void {
    for (const b of seq.blocks) this.pool.release(b);
    seq.blocks.length = 0;
    seq.blockHashes.length = 0;
  }

  private reapCancelled(): void {
    for (const s of this.running.filter((x) => x.cancelled)) this.finish(s, "cancelled");
  }

  private dequeue(seq: Sequence): void {
    const r = this.resumed.indexOf(seq);
    if (r >= 0) this.resumed.splice(r, 1);
    else this.queues.remove(seq.spec.tenant, seq);
  }

  private finish(seq: Sequence, reason: FinishReason, error?: Error): void {
    if (seq.finished) return;
    seq.finished = true;
    this.releaseBlocks(seq);
    this.running = this.running.filter((s) => s !== seq);
    seq.spec.sink.onFinish(reason, seq.stats(), error);
  }
}
