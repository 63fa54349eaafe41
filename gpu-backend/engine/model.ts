import { Checkpoint, type LoadOptions } from "./checkpoint.js";
import { cacheWidth, isMoeLayer, type ModelConfig } from "./config.js";
import { bucketByExpert } from "./expert-plan.js";
import { LocalExperts, type ExpertExecutor } from "./experts.js";
import { route, type Route } from "./gate.js";
import { buildBlockGraph, buildHeadGraph } from "./kernels/block-graph.js";
import { createRuntime, type Feed, type KernelRuntime, type KernelSession, type RuntimeOptions } from "./kernels/runtime.js";
import type { LatentCache, PagedRows } from "./latent-cache.js";
import { prefixFamilies, sharedBlocks } from "./prefix-families.js";
import { RopeTable } from "./rope.js";

/**
 * Chunks of at least this many tokens attend in the expanded MLA form. Decompressing P cached latents into
 * per-head keys and values costs P·nh·kvl·(nope+v) multiply-adds; attending in that form then saves
 * Tq·P·nh·((kvl+R) − (nope+R) + (kvl+R) − v). Break-even: Tq ≈ 100 (bench model) to 160 (DeepSeek-V3).
 * Below it the absorbed form wins (short chunks after a long cached prefix: time to first token doubled).
 */
const EXPANDED_ATTENTION_MIN_TOKENS = 128;

/**
 * Decode and short-chunk groups whose past rows exceed this many bytes gather and attend them a part at a time
 * (see `buildBlockGraph`), so a part's rows stay in cache between the gather and both GEMMs. Bench model, 32
 * sequences decoding: attention −14 to −28% a step at 2,000 positions (whole steps −9 to −23%), about −20% at 500
 * and 1,000; parts of 2 and 8 MB did alike; short pasts (one part) unchanged.
 */
const ATTENTION_PART_BYTES = 4 * 2 ** 20;

/** Where a group's cached rows are in the paged pool (see `DeepSeekModel.blockTables`). */
interface BlockTables {
  /** `[B, nb]`: each sequence's blocks after the shared ones. */
  table: Feed;
  /** `[ns]`: leading blocks every sequence of the group has. */
  shared: Feed;
  /** Positions the shared blocks hold (ns × block size). */
  sharedRows: number;
}

/** One sequence's share of a forward step. */
export interface SequenceStep {
  /** New tokens, at positions past, past+1, … */
  tokens: ArrayLike<number>;
  /** Tokens of this sequence already in its cache. */
  past: number;
  cache: LatentCache;
  /** Which positions need logits. */
  logits: "last" | "all" | "none";
  /** When set (> 0), its logits rows also come back as softmax(logits / temperature), in `probs`. */
  temperature?: number | null;
  /**
   * False: the caller reads only `probs` or `picked`. A step whose rows all say so fetches no logits (at 32 rows
   * of the bench model that spares a 2 MB copy a step). Default true.
   */
  rawLogits?: boolean;
  /**
   * With a temperature and logits "last": a variate in [0, 1) from which the head draws the next token
   * (inverse CDF over the whole softmax(logits / temperature)); it comes back in `picked`, and `probs` is null.
   */
  draw?: number | null;
  /** With logits "last": the head picks the highest logit (the first on ties), in `picked`. */
  argmax?: boolean;
}

export interface StepResult {
  /**
   * Per sequence: `[rows, vocab]` row-major (1 row for "last", one per token for "all"); null for "none", and for
   * every sequence of a step that fetched no logits (see `rawLogits`).
   */
  logits: (Float32Array | null)[];
  /** Per sequence that asked for a temperature and no `draw`: its rows' probabilities, laid out as `logits`; else null. */
  probs: (Float32Array | null)[];
  /** Per sequence that asked for a `draw` or the `argmax`: the token the head picked; else null. */
  picked: (number | null)[];
}

export interface ModelOptions extends LoadOptions, Partial<RuntimeOptions> {
  /** Builds the routed-expert executor; the default keeps every expert in this thread. */
  experts?: (ctx: { runtime: KernelRuntime; ckpt: Checkpoint; config: ModelConfig }) => Promise<ExpertExecutor>;
  /** Called with every routing decision (layer, token row of the step, route): evaluation and load statistics. */
  onRoute?: (layer: number, row: number, r: Route) => void;
  /** See `ATTENTION_PART_BYTES` (tests make it small to attend tiny groups in parts). */
  attentionPartBytes?: number;
}

/**
 * A DeepSeek-V3/V2 model: embeddings in memory, one fused graph per decoder layer (attention through shared
 * experts), routed experts through an ExpertExecutor, and a head graph. Steps batch any mix of prefill chunks
 * and decode tokens; sequences bringing equally many new tokens share one attention run per layer.
 */
export class DeepSeekModel {
  onRoute: ModelOptions["onRoute"];
  /** Tokens routed to each expert since load, per MoE layer: `[layer][expert]`. */
  readonly expertLoad: Float64Array[];

  private constructor(
    readonly config: ModelConfig,
    readonly runtime: KernelRuntime,
    private readonly embed: Float32Array,
    /** Per layer: its block graph (every attention group: decode, short and long prefill chunks). */
    private readonly blocks: KernelSession[],
    private readonly head: KernelSession,
    private readonly gateBias: (Float32Array | null)[],
    readonly experts: ExpertExecutor,
    private readonly rope: RopeTable,
    opts: ModelOptions,
  ) {
    this.onRoute = opts.onRoute;
    this.expertLoad = Array.from({ length: config.layers }, () => new Float64Array(config.routedExperts));
  }

  static async load(dir: string, opts: ModelOptions = {}): Promise<DeepSeekModel> {
    const ckpt = new Checkpoint(dir, opts);
    try {
      const cfg = ckpt.config;
      const runtime = await createRuntime({
        backend: opts.backend ?? "node",
        ...(opts.threads ? { threads: opts.threads } : {}),
        ...(opts.executionProviders ? { executionProviders: opts.executionProviders } : {}),
        ...(opts.pinThreads !== undefined ? { pinThreads: opts.pinThreads } : {}),
      });
      const embed = ckpt.get("model.embed_tokens.weight", [cfg.vocabSize, cfg.hidden]);
      const blocks: KernelSession[] = [];
      const gateBias: (Float32Array | null)[] = [];
      for (let l = 0; l < cfg.layers; l++) {
        // One session a layer holds its weights once, whichever attention form a group takes. Its pool spins
        // for the run: decode groups are many short kernels, and prefill chunks were as fast as on a sleeping
        // pool (bench model, 2-core VM, interleaved runs).
        blocks.push(await runtime.createSession(buildBlockGraph(cfg, ckpt, l, { expandedMinTokens: EXPANDED_ATTENTION_MIN_TOKENS, attentionPartBytes: opts.attentionPartBytes ?? ATTENTION_PART_BYTES }), "streaming"));
        const biasName = `model.layers.${l}.mlp.gate.e_score_correction_bias`;
        gateBias.push(isMoeLayer(cfg, l) && cfg.topkMethod === "noaux_tc" && ckpt.has(biasName) ? ckpt.get(biasName, [cfg.routedExperts]) : null);
      }
      const head = await runtime.createSession(buildHeadGraph(cfg, ckpt));
      const experts = opts.experts ? await opts.experts({ runtime, ckpt, config: cfg }) : await LocalExperts.create(runtime, ckpt, cfg);
      return new DeepSeekModel(cfg, runtime, embed, blocks, head, gateBias, experts, new RopeTable(cfg), opts);
    } finally {
      ckpt.close();
    }
  }

  get cacheWidth(): number {
    return cacheWidth(this.config);
  }

  /**
   * Steps run one at a time (they share scratch buffers); callers may still overlap their calls. With
   * `reuseOutputs` the logits and probabilities are written into buffers the model keeps, valid only until its
   * next step. A caller that reads them before its next call (the scheduler) spares every step rows × vocab × 8
   * bytes of fresh memory: 4 MB at 32 rows of the bench model, 66 MB at 64 rows of DeepSeek-V3's vocabulary
   * (on the bench model's 32 streams, 12% fewer full collections).
   */
  forward(seqs: SequenceStep[], opts: { reuseOutputs?: boolean } = {}): Promise<StepResult> {
    const result = this.queue.then(() => this.step(seqs, opts.reuseOutputs ?? false));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private queue: Promise<unknown> = Promise.resolve();
  /**
   * A step's working arrays, reused across layers and steps: the residual stream into and out of a layer (two,
   * alternating), the experts' inputs and gate scores, the new cache rows, and a group's copied-out past rows
   * (see `attend`). The layer graphs write their outputs into them in place. Fresh arrays each layer were
   * ~2.4 MB a step at 32 sequences, and they drove collections that stall steps: a pod's 32-stream run took 60
   * full ones with them, 37 without (under node's default heap sizes; see POD_NODE_FLAGS for the pod's).
   */
  private scratch = new Map<string, Float32Array>();

  private buffer(name: "x0" | "x1" | "hn" | "scores" | "kv" | "past", n: number): Float32Array {
    let b = this.scratch.get(name);
    if (!b || b.length < n) this.scratch.set(name, (b = new Float32Array(Math.max(n, (b?.length ?? 0) * 2))));
    return b.subarray(0, n);
  }

  /** The head's outputs when reused (see `forward`). */
  private headScratch = { logits: new Float32Array(0), probs: new Float32Array(0) };

  private headOutputs(rows: number): Record<"logits" | "probs", Feed & { data: Float32Array }> {
    const n = rows * this.config.vocabSize;
    if (this.headScratch.logits.length < n) this.headScratch = { logits: new Float32Array(n), probs: new Float32Array(n) };
    const dims = [rows, this.config.vocabSize];
    return { logits: { data: this.headScratch.logits.subarray(0, n), dims }, probs: { data: this.headScratch.probs.subarray(0, n), dims } };
  }

  private async step(seqs: SequenceStep[], reuseOutputs: boolean): Promise<StepResult> {
    const cfg = this.config;
    const H = cfg.hidden;
    const D = this.cacheWidth;

    // Attention groups: sequences bringing the same number of new tokens run together (all decodes form one
    // group; equal-length prefill chunks another), since one attention run takes B sequences × Tq tokens; a group
    // splits into families behind long shared cached prefixes, which each attend theirs once.
    const bySize = new Map<number, number[]>();
    seqs.forEach((s, i) => {
      const n = s.tokens.length;
      if (n === 0) throw new RangeError("a step must bring at least one token per sequence");
      if (s.draw != null && !((s.temperature ?? 0) > 0 && s.logits === "last" && s.draw >= 0 && s.draw < 1 && !s.argmax)) {
        throw new RangeError("a draw needs a temperature, logits \"last\" and a variate in [0, 1), and no argmax");
      }
      if (s.argmax && s.logits !== "last") throw new RangeError("an argmax needs logits \"last\"");
      const g = bySize.get(n);
      if (g) g.push(i);
      else bySize.set(n, [i]);
    });
    const groups = [...bySize.entries()].sort((a, b) => a[0] - b[0]).flatMap(([, g]) => this.families(g, seqs));

    // Lay tokens out group by group, so every group is a contiguous row range.
    const rowOf: number[] = new Array(seqs.length);
    const positions: number[] = [];
    const tokenIds: number[] = [];
    const groupRows: [number, number][] = [];
    for (const grp of groups) {
      const start = positions.length;
      for (const i of grp) {
        const s = seqs[i]!;
        rowOf[i] = positions.length;
        for (let k = 0; k < s.tokens.length; k++) {
          const id = s.tokens[k]!;
          if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary`);
          if (s.past + k >= cfg.maxPositions) throw new RangeError(`position ${s.past + k} exceeds max_position_embeddings ${cfg.maxPositions}`);
          tokenIds.push(id);
          positions.push(s.past + k);
        }
      }
      groupRows.push([start, positions.length]);
    }
    const T = positions.length;
    let x = this.buffer("x0", T * H);
    tokenIds.forEach((id, r) => x.set(this.embed.subarray(id * H, (id + 1) * H), r * H));
    const { cos, sin } = this.rope.fill(positions);
    // A group's block tables are the same in every layer (the layers share block numbers).
    const tables = groups.map((grp) => this.blockTables(grp.map((i) => seqs[i]!), seqs[grp[0]!]!.tokens.length));

    const E = cfg.routedExperts;
    for (let l = 0; l < cfg.layers; l++) {
      const moe = isMoeLayer(cfg, l);
      const next = this.buffer(l % 2 ? "x0" : "x1", T * H);
      const hn = this.buffer("hn", T * H);
      const scores = this.buffer("scores", T * E);
      for (let gi = 0; gi < groups.length; gi++) {
        const grp = groups[gi]!;
        const [r0, r1] = groupRows[gi]!;
        const n = r1 - r0;
        // The group's rows of each output, written in place (the wasm backend returns fresh arrays: copied).
        const rows = (a: Float32Array, w: number) => ({ data: a.subarray(r0 * w, r1 * w), dims: [n, w] });
        const into = { kv: { data: this.buffer("kv", n * D), dims: [n, D] }, ...(moe ? { base: rows(next, H), hn: rows(hn, H), scores: rows(scores, E) } : { out: rows(next, H) }) };
        const out = await this.attend(l, grp.map((i) => seqs[i]!), tables[gi]!, x, cos, sin, r0, r1, into);
        for (const [name, f] of Object.entries(into)) if (out[name] !== f.data) f.data.set(out[name]!);
        const kv = into.kv.data;
        for (const i of grp) {
          const s = seqs[i]!;
          for (let k = 0; k < s.tokens.length; k++) {
            const row = rowOf[i]! + k - r0;
            s.cache.write(l, s.past + k, kv.subarray(row * D, (row + 1) * D));
          }
        }
      }
      if (moe) await this.routeAndRunExperts(l, hn, scores, next, T);
      x = next;
    }

    // Logits only for the rows that need them.
    const want: number[] = [];
    const spans: ([number, number] | null)[] = seqs.map((s, i) => {
      if (s.logits === "none") return null;
      const first = s.logits === "all" ? rowOf[i]! : rowOf[i]! + s.tokens.length - 1;
      const start = want.length;
      for (let r = first; r < rowOf[i]! + s.tokens.length; r++) want.push(r);
      return [start, want.length];
    });
    const none = seqs.map(() => null);
    if (want.length === 0) return { logits: none, probs: none, picked: none };
    const hx = new Float32Array(want.length * H);
    want.forEach((r, k) => hx.set(x.subarray(r * H, (r + 1) * H), k * H));
    const hasTemperature = (i: number) => (seqs[i]!.temperature ?? 0) > 0;
    const draws = (i: number) => seqs[i]!.draw != null;
    const argmax = (i: number) => seqs[i]!.argmax === true;
    const invTemp = new Float32Array(want.length).fill(1);
    const u = new Float32Array(want.length);
    spans.forEach((sp, i) => {
      if (!sp) return;
      if (hasTemperature(i)) invTemp.fill(1 / seqs[i]!.temperature!, sp[0], sp[1]);
      if (draws(i)) u[sp[0]] = seqs[i]!.draw!;
    });
    // Only what some row reads is fetched: onnxruntime-node copies each fetched output out.
    const reads = {
      logits: (i: number) => seqs[i]!.rawLogits !== false || !(hasTemperature(i) || argmax(i)),
      probs: (i: number) => hasTemperature(i) && !draws(i),
      token: draws,
      argmax,
    };
    const outputs = (["logits", "probs", "token", "argmax"] as const).filter((name) => spans.some((sp, i) => sp && reads[name](i)));
    const asked = (name: (typeof outputs)[number]) => (outputs.includes(name) ? 1 : 0);
    const needs = Float32Array.of(asked("probs") || asked("token"), asked("token"), asked("argmax"));
    const feeds = { x: { data: hx, dims: [want.length, H] }, inv_temp: { data: invTemp, dims: [want.length, 1] }, u: { data: u, dims: [want.length, 1] }, needs: { data: needs, dims: [3] } };
    const out = await this.head.run(feeds, reuseOutputs ? this.headOutputs(want.length) : undefined, outputs);
    const V = cfg.vocabSize;
    const rows = (all: Float32Array | undefined, sp: [number, number] | null) => (all && sp ? all.subarray(sp[0] * V, sp[1] * V) : null);
    return {
      logits: spans.map((sp) => rows(out.logits, sp)),
      probs: spans.map((sp, i) => (reads.probs(i) ? rows(out.probs, sp) : null)),
      picked: spans.map((sp, i) => (!sp ? null : draws(i) ? out.token![sp[0]]! : argmax(i) ? out.argmax![sp[0]]! : null)),
    };
  }

  /**
   * The pool a group's rows live in, when every sequence's rows share one and the runtime reads inputs in
   * place (onnxruntime-web copies each input into its heap: the whole pool, every layer); else null.
   */
  private pagedPool(group: SequenceStep[]): PagedRows | null {
    const first = group[0]!.cache.paged;
    if (this.runtime.backend !== "node" || !first || group.some((s) => s.cache.paged?.pools !== first.pools)) return null;
    return first;
  }

  /** An attention group split by shared cached prefix (see `prefixFamilies`), where it reads a paged pool in place. */
  private families(group: number[], seqs: SequenceStep[]): number[][] {
    const pool = this.pagedPool(group.map((i) => seqs[i]!));
    if (!pool || group.length < 3 || seqs[group[0]!]!.tokens.length >= EXPANDED_ATTENTION_MIN_TOKENS) return [group];
    return prefixFamilies(group, seqs, pool.blockSize);
  }

  /**
   * A group's block tables into its pool (see `pagedPool`); null: `attend` copies the rows out instead. Leading
   * blocks that every sequence has wholly in its past are `shared` (attended once for the group, see
   * `buildBlockGraph`); `table` holds each sequence's rest.
   */
  private blockTables(group: SequenceStep[], tq: number): BlockTables | null {
    const first = this.pagedPool(group);
    if (!first) return null;
    const bs = first.blockSize;
    const ns = group.length > 1 && tq < EXPANDED_ATTENTION_MIN_TOKENS ? sharedBlocks(group, bs) : 0;
    const nb = Math.ceil(Math.max(...group.map((s) => s.past)) / bs) - ns;
    const table = new BigInt64Array(group.length * nb).fill(BigInt(first.zeroBlock));
    group.forEach((s, b) => {
      const blocks = s.cache.paged!.blocks;
      for (let i = ns; i < Math.ceil(s.past / bs); i++) table[b * nb + i - ns] = BigInt(blocks[i]!);
    });
    return {
      table: { data: table, dims: [group.length, nb] },
      shared: { data: BigInt64Array.from(first.blocks.slice(0, ns), BigInt), dims: [ns] },
      sharedRows: ns * bs,
    };
  }

  /** A group (B sequences × Tq new tokens, rows r0…r1) through layer `l`'s block. */
  private attend(l: number, group: SequenceStep[], tables: BlockTables | null, x: Float32Array, cos: Float32Array, sin: Float32Array, r0: number, r1: number, into: Record<string, Feed & { data: Float32Array }>): Promise<Record<string, Float32Array>> {
    const H = this.config.hidden;
    const D = this.cacheWidth;
    const half = this.config.ropeDim / 2;
    const B = group.length;
    let pool: Feed;
    let rows = tables;
    if (rows) {
      const paged = group[0]!.cache.paged!;
      const layer = paged.pools[l]!;
      pool = { data: layer, dims: [layer.length / (paged.blockSize * D), paged.blockSize * D] };
    } else {
      // Each sequence's rows copied out as one block of the longest length.
      const P = Math.max(...group.map((s) => s.past));
      const past = this.buffer("past", B * P * D);
      group.forEach((s, b) => {
        s.cache.read(l, s.past, past, b * P * D);
        // Padding is masked, but must not carry another sequence's rows (0 × Inf would still leak in).
        past.fill(0, (b * P + s.past) * D, (b + 1) * P * D);
      });
      pool = { data: past, dims: [B, P * D] };
      rows = { table: { data: BigInt64Array.from(group, (_, b) => BigInt(b)), dims: [B, 1] }, shared: { data: new BigInt64Array(0), dims: [0] }, sharedRows: 0 };
    }
    const pastLen = Float32Array.from(group, (s) => s.past - rows.sharedRows);
    return this.blocks[l]!.run({
      x: { data: x.subarray(r0 * H, r1 * H), dims: [r1 - r0, H] },
      cos: { data: cos.subarray(r0 * half, r1 * half), dims: [r1 - r0, half] },
      sin: { data: sin.subarray(r0 * half, r1 * half), dims: [r1 - r0, half] },
      pool,
      table: rows.table,
      past_len: { data: pastLen, dims: [B] },
      shared_table: rows.shared,
    }, into);
  }

  private async routeAndRunExperts(layer: number, hn: Float32Array, scores: Float32Array, out: Float32Array, T: number): Promise<void> {
    const E = this.config.routedExperts;
    const routes: Route[] = [];
    const load = this.expertLoad[layer]!;
    for (let r = 0; r < T; r++) {
      const rt = route(this.config, scores, this.gateBias[layer]!, r * E);
      routes.push(rt);
      for (const e of rt.experts) load[e]! += 1;
      this.onRoute?.(layer, r, rt);
    }
    await this.experts.run(layer, bucketByExpert(routes), hn, out);
  }

  async close(): Promise<void> {
    for (const session of this.blocks) await session.release();
    await this.head.release();
    await this.experts.close();
  }
}
