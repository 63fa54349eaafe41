import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Checkpoint } from "../../gpu-backend/engine/checkpoint.js";
import { ExpertGroup, expertWeightBytes } from "../../gpu-backend/engine/expert-group.js";
import type { ExpertPlan } from "../../gpu-backend/engine/expert-plan.js";
import { LocalExperts } from "../../gpu-backend/engine/experts.js";
import { buildExpertGraph } from "../../gpu-backend/engine/kernels/block-graph.js";
import { ContiguousLatentCache } from "../../gpu-backend/engine/latent-cache.js";
import { DeepSeekModel } from "../../gpu-backend/engine/model.js";
import { Rng } from "../../gpu-backend/engine/rng.js";
import { LatentStore, PagedLatentCache } from "../../gpu-backend/kv/paged-cache.js";
import { writeRandomCheckpoint } from "../../gpu-backend/tools/random-checkpoint.js";
import { SequenceSampler, type SamplingParams } from "../../gpu-backend/sampling/sampler.js";
import { TINY_V3_CONFIG } from "../../gpu-backend/tools/tiny-config.js";
import { writeTinyModel } from "../../gpu-backend/tools/write-tiny-model.js";

const maxDiff = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** A DeepSeek-V2-Lite-shaped config: no q LoRA, softmax gate, group-limited greedy, no correction bias. */
const V2_CONFIG = {
  ...TINY_V3_CONFIG,
  architectures: ["DeepseekV2ForCausalLM"],
  model_type: "deepseek_v2",
  q_lora_rank: null,
  scoring_func: "softmax",
  topk_method: "group_limited_greedy",
  norm_topk_prob: false,
  routed_scaling_factor: 1.0,
  rope_scaling: null,
};

let dir: string;
const models: Record<string, DeepSeekModel> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "engine-"));
  writeTinyModel(join(dir, "v3"));
  writeRandomCheckpoint(join(dir, "v2"), V2_CONFIG, 99);
  models.v3 = await DeepSeekModel.load(join(dir, "v3"), { backend: "node" });
  models.v2 = await DeepSeekModel.load(join(dir, "v2"), { backend: "node" });
  models.v3web = await DeepSeekModel.load(join(dir, "v3"), { backend: "web" });
  // Every group of two or more sequences with a past attends it one sequence at a time.
  models.v3parts = await DeepSeekModel.load(join(dir, "v3"), { backend: "node", attentionPartBytes: 1 });
});

afterAll(async () => {
  for (const m of Object.values(models)) await m.close();
  rmSync(dir, { recursive: true, force: true });
});

function prompt(n: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => 3 + Math.floor(rng.uniform() * 1000));
}

/** Takes 4-position blocks of one pool per model in a scrambled order, cleared as the pod's scheduler clears them. */
const pools = new Map<DeepSeekModel, { store: LatentStore; free: number[] }>();
function pagedCache(m: DeepSeekModel, positions = 256, lead: readonly number[] = []): PagedLatentCache {
  let p = pools.get(m);
  if (!p) {
    const store = new LatentStore(m.config.layers, 8192, 4, m.cacheWidth);
    // Rows no sequence owns are garbage, so a wrong or missing table entry shows in the logits.
    for (const rows of store.layers) rows.fill(1e3, 0, store.numBlocks * store.blockSize * store.width);
    const rng = new Rng(5);
    const free = Array.from({ length: store.numBlocks }, (_, b) => b).sort(() => rng.uniform() - 0.5);
    pools.set(m, (p = { store, free }));
  }
  const blocks = p.free.splice(0, positions / 4);
  for (const b of blocks) p.store.clear(b);
  return new PagedLatentCache(p.store, [...lead, ...blocks]);
}

describe.each([
  ["v3", "contiguous"],
  ["v3", "paged"],
  ["v2", "contiguous"],
  ["v2", "paged"],
  ["v3parts", "contiguous"],
  ["v3parts", "paged"],
])("%s, %s rows: the latent cache reproduces full recomputation", (name, kind) => {
  const cacheFor = (m: DeepSeekModel) => (kind === "paged" ? pagedCache(m) : new ContiguousLatentCache(m.config.layers, m.cacheWidth, 8));

  it("prefill logits at every position equal token-by-token decoding", async () => {
    const m = models[name]!;
    const ids = prompt(37, 1);
    const full = (await m.forward([{ tokens: ids, past: 0, cache: cacheFor(m), logits: "all" }])).logits[0]!;
    const cache = cacheFor(m);
    const V = m.config.vocabSize;
    let worst = 0;
    for (let t = 0; t < ids.length; t++) {
      const step = (await m.forward([{ tokens: [ids[t]!], past: t, cache, logits: "last" }])).logits[0]!;
      worst = Math.max(worst, maxDiff(step, full.subarray(t * V, (t + 1) * V)));
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it("chunked prefill (prefix in the cache, chunk after) equals one prefill", async () => {
    const m = models[name]!;
    const ids = prompt(50, 2);
    const whole = (await m.forward([{ tokens: ids, past: 0, cache: cacheFor(m), logits: "last" }])).logits[0]!;
    const cache = cacheFor(m);
    for (const [a, b] of [[0, 17], [17, 33], [33, 50]] as const) {
      const r = await m.forward([{ tokens: ids.slice(a, b), past: a, cache, logits: "last" }]);
      if (b === 50) expect(maxDiff(r.logits[0]!, whole)).toBeLessThan(1e-4);
    }
  });

  it("a long chunk (attention over per-head keys and values) equals short chunks (attention over latents)", async () => {
    const m = models[name]!;
    const V = m.config.vocabSize;
    const ids = prompt(200, 21);
    const cache = cacheFor(m);
    await m.forward([{ tokens: ids.slice(0, 40), past: 0, cache, logits: "none" }]);
    const long = (await m.forward([{ tokens: ids.slice(40), past: 40, cache, logits: "all" }])).logits[0]!; // 160 tokens
    const shortCache = cacheFor(m);
    let worst = 0;
    for (let a = 0; a < 200; a += 20) {
      const r = (await m.forward([{ tokens: ids.slice(a, a + 20), past: a, cache: shortCache, logits: "all" }])).logits[0]!;
      if (a >= 40) worst = Math.max(worst, maxDiff(r, long.subarray((a - 40) * V, (a - 20) * V)));
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it("a sequence's logits do not depend on what else is in the batch", async () => {
    const m = models[name]!;
    const a = prompt(9, 3);
    const b = prompt(21, 4);
    const alone = (await m.forward([{ tokens: a, past: 0, cache: cacheFor(m), logits: "last" }])).logits[0]!;
    // Prefill b while decoding two other sequences, with `a` prefilled in the same step.
    const c1 = cacheFor(m);
    const c2 = cacheFor(m);
    await m.forward([{ tokens: prompt(5, 5), past: 0, cache: c1, logits: "none" }, { tokens: prompt(12, 6), past: 0, cache: c2, logits: "none" }]);
    const mixed = await m.forward([
      { tokens: [7], past: 5, cache: c1, logits: "last" },
      { tokens: a, past: 0, cache: cacheFor(m), logits: "last" },
      { tokens: [9], past: 12, cache: c2, logits: "last" },
      { tokens: b, past: 0, cache: cacheFor(m), logits: "none" },
    ]);
    expect(maxDiff(mixed.logits[1]!, alone)).toBeLessThan(1e-4);
    expect(mixed.logits[3]).toBeNull();
  });

  it("equal-length chunks of sequences at different positions share one attention run correctly", async () => {
    const m = models[name]!;
    const V = m.config.vocabSize;
    const seqs = [prompt(19, 7), prompt(27, 8), prompt(8, 9)]; // the last 8 tokens of each are the chunk
    const alone = await Promise.all(seqs.map(async (ids) => (await m.forward([{ tokens: ids, past: 0, cache: cacheFor(m), logits: "all" }])).logits[0]!));
    const caches = seqs.map(() => cacheFor(m));
    await m.forward(seqs.flatMap((ids, i) => (ids.length > 8 ? [{ tokens: ids.slice(0, -8), past: 0, cache: caches[i]!, logits: "none" as const }] : [])));
    const together = await m.forward(seqs.map((ids, i) => ({ tokens: ids.slice(-8), past: ids.length - 8, cache: caches[i]!, logits: "all" as const })));
    seqs.forEach((ids, i) => expect(maxDiff(together.logits[i]!, alone[i]!.subarray((ids.length - 8) * V))).toBeLessThan(1e-4));
  });
});

describe("attention over a group's past in parts", () => {
  it("parts of 2 of 5 sequences (the last one short) give the logits of one whole-group run, decoding and in chunks", async () => {
    const whole = models.v3!;
    // Parts hold 64 cached rows: 2 sequences of 32 positions (8 blocks of 4).
    const parts = await DeepSeekModel.load(join(dir, "v3"), { backend: "node", attentionPartBytes: whole.cacheWidth * 4 * 64 });
    try {
      const V = whole.config.vocabSize;
      const pasts = [30, 17, 25, 9, 29];
      for (const tq of [1, 3]) {
        const run = async (m: DeepSeekModel) => {
          const caches = pasts.map(() => pagedCache(m));
          await m.forward(pasts.map((n, i) => ({ tokens: prompt(n, 40 + i), past: 0, cache: caches[i]!, logits: "none" as const })));
          return (await m.forward(pasts.map((n, i) => ({ tokens: prompt(tq, 50 + i), past: n, cache: caches[i]!, logits: "all" as const })))).logits;
        };
        const [a, b] = [await run(whole), await run(parts)];
        pasts.forEach((_, i) => {
          expect(a[i]!.length).toBe(tq * V);
          expect(maxDiff(b[i]!, a[i]!)).toBeLessThan(1e-5);
        });
      }
    } finally {
      await parts.close();
    }
  });
});

describe.each(["v3", "v2"])("%s, paged rows: a cached prefix shared by a group", (name) => {
  it("is attended once for all its sequences, with each one's logits as when it runs alone", async () => {
    const m = models[name]!;
    const prefix = prompt(24, 31); // 6 whole blocks
    const own = [prompt(5, 32), prompt(5, 33), prompt(5, 34)];
    const alone = await Promise.all(own.map(async (o) => (await m.forward([{ tokens: [...prefix, ...o], past: 0, cache: pagedCache(m), logits: "last" }])).logits[0]!));
    const first = pagedCache(m);
    await m.forward([{ tokens: prefix, past: 0, cache: first, logits: "none" }]);
    // Each sequence reads the prefix's blocks and writes its own after them (what a prefix-cache hit gives).
    const caches = own.map(() => pagedCache(m, 64, first.blocks.slice(0, 6)));
    // A chunk of 2 (shared blocks, nothing of its own yet), then single-token decode steps (own rows after them).
    await m.forward(own.map((o, i) => ({ tokens: o.slice(0, 2), past: 24, cache: caches[i]!, logits: "none" as const })));
    let last: (Float32Array | null)[] = [];
    for (let k = 2; k < 5; k++) last = (await m.forward(own.map((o, i) => ({ tokens: [o[k]!], past: 24 + k, cache: caches[i]!, logits: "last" as const })))).logits;
    own.forEach((_, i) => expect(maxDiff(last[i]!, alone[i]!)).toBeLessThan(1e-4));
  });

  it("families behind different prefixes in one step each attend their own, next to sequences of no family", async () => {
    const m = models[name]!;
    // Two 1,024-token prompts with three conversations each (enough shared rows for a family of their own),
    // and two sequences sharing nothing.
    const prefixes = [prompt(1024, 41), prompt(1024, 42)];
    const firsts = await Promise.all(prefixes.map(async (p) => {
      const c = pagedCache(m, 1024);
      await m.forward([{ tokens: p, past: 0, cache: c, logits: "none" }]);
      return c;
    }));
    const seqs = [0, 0, 1, 1, 0, 1].map((f, k) => ({ prefix: prefixes[f]!, cache: pagedCache(m, 16, firsts[f]!.blocks), own: prompt(3, 50 + k) }));
    for (const k of [0, 1]) {
      const cache = pagedCache(m, 64);
      const head = prompt(10, 60 + k);
      await m.forward([{ tokens: head, past: 0, cache, logits: "none" }]);
      seqs.push({ prefix: head, cache, own: prompt(3, 70 + k) });
    }
    const alone = await Promise.all(seqs.map(async (s) => (await m.forward([{ tokens: [...s.prefix, ...s.own], past: 0, cache: new ContiguousLatentCache(m.config.layers, m.cacheWidth, 8), logits: "last" }])).logits[0]!));
    let last: (Float32Array | null)[] = [];
    for (let k = 0; k < 3; k++) last = (await m.forward(seqs.map((s) => ({ tokens: [s.own[k]!], past: s.prefix.length + k, cache: s.cache, logits: "last" as const })))).logits;
    seqs.forEach((_, i) => expect(maxDiff(last[i]!, alone[i]!)).toBeLessThan(1e-4));
  });
});

describe("expert execution", () => {
  it("one fused session per layer (rows sorted by expert) equals one run per (token, expert) pair", async () => {
    const perToken = await DeepSeekModel.load(join(dir, "v3"), {
      backend: "node",
      experts: ({ runtime, ckpt, config }) => LocalExperts.create(runtime, ckpt, config, { mode: "per-token" }),
    });
    try {
      expect(perToken.experts.describe()).toMatchObject({ mode: "per-token" });
      expect(models.v3!.experts.describe()).toMatchObject({ mode: "grouped" });
      const fresh = (m: DeepSeekModel) => new ContiguousLatentCache(m.config.layers, m.cacheWidth, 8);
      const batch = (m: DeepSeekModel) => [prompt(23, 11), prompt(5, 12), prompt(14, 13)].map((tokens) => ({ tokens, past: 0, cache: fresh(m), logits: "all" as const }));
      const a = await models.v3!.forward(batch(models.v3!));
      const b = await perToken.forward(batch(perToken));
      a.logits.forEach((l, i) => expect(maxDiff(l!, b.logits[i]!)).toBeLessThan(1e-4));
    } finally {
      await perToken.close();
    }
  });

  it("an expert group of any subset, whole or split into parts, equals its experts run one by one and summed by gate weight, and rejects experts it does not hold", async () => {
    const m = models.v3!;
    const ckpt = new Checkpoint(join(dir, "v3"));
    const H = m.config.hidden;
    const T = 3;
    const hn = Float32Array.from({ length: T * H }, (_, i) => Math.sin(i * 0.37));
    const base = Float32Array.from({ length: T * H }, (_, i) => Math.cos(i * 0.11));
    // Expert k of the subset takes tokens 0…k, with weight 0.1·(k+1) + 0.05·token.
    const planFor = (experts: number[]): ExpertPlan => {
      const plan: ExpertPlan = { rows: [], weights: [], tasks: [] };
      experts.forEach((e, k) => {
        plan.tasks.push([1, e, plan.rows.length, k + 1]);
        for (let t = 0; t <= k; t++) {
          plan.rows.push(t);
          plan.weights.push(0.1 * (k + 1) + 0.05 * t);
        }
      });
      return plan;
    };
    try {
      const expertBytes = expertWeightBytes(m.config);
      // Whole (one session), and split: at most two experts' weights a part, so [1, 5, 9] runs as [1, 5] then [9].
      for (const [experts, maxPartBytes, sessions] of [[[3], undefined, 1], [[1, 5, 9], undefined, 1], [[0, 15], undefined, 1], [[1, 5, 9], 2 * expertBytes, 2], [[0, 15], expertBytes, 2]] as const) {
        const group = await ExpertGroup.create(m.runtime, ckpt, m.config, 1, experts, maxPartBytes);
        expect(group.sessionCount).toBe(sessions);
        const plan = planFor([...experts]);
        const got = await group.run(plan, hn, base);
        const want = base.slice();
        for (const [, e, first, n] of plan.tasks) {
          const single = await m.runtime.createSession(buildExpertGraph(m.config, ckpt, 1, e), "single");
          const y = (await single.run({ x: { data: hn.subarray(0, n * H), dims: [n, H] } })).y!;
          for (let i = 0; i < n; i++) for (let d = 0; d < H; d++) want[plan.rows[first + i]! * H + d]! += plan.weights[first + i]! * y[i * H + d]!;
          await single.release();
        }
        expect(maxDiff(got, want)).toBeLessThan(1e-5);
        await expect(group.run(planFor([2]), hn, base)).rejects.toThrow(/not loaded here/);
        if (experts.length > 1) await expect(group.run(planFor([experts.at(-1)!, experts[0]!]), hn, base)).rejects.toThrow(/ascending/);
        // Only some parts' experts routed to: the others are not run, and base comes back plus what was.
        const one = planFor([experts.at(-1)!]);
        const single = await m.runtime.createSession(buildExpertGraph(m.config, ckpt, 1, experts.at(-1)!), "single");
        const y = (await single.run({ x: { data: hn.subarray(0, H), dims: [1, H] } })).y!;
        await single.release();
        expect(maxDiff(await group.run(one, hn, base), base.map((v, i) => (i < H ? v + one.weights[0]! * y[i]! : v)))).toBeLessThan(1e-5);
        expect(await group.run({ rows: [], weights: [], tasks: [] }, hn, base)).toEqual(base);
        await group.release();
      }
    } finally {
      ckpt.close();
    }
  });
});

describe("backends", () => {
  it("onnxruntime-node and onnxruntime-web give the same logits", async () => {
    const ids = prompt(23, 8);
    const run = async (m: DeepSeekModel) =>
      (await m.forward([{ tokens: ids, past: 0, cache: new ContiguousLatentCache(m.config.layers, m.cacheWidth), logits: "all" }])).logits[0]!;
    expect(maxDiff(await run(models.v3!), await run(models.v3web!))).toBeLessThan(1e-4);
  });
});

describe("reused outputs", () => {
  it.each(["v3", "v3web"])("%s: logits and probabilities written into kept buffers equal fresh ones", async (name) => {
    const m = models[name]!;
    const steps = (temperature: number) => [prompt(9, 21), prompt(4, 22)].map((ids) => ({ tokens: ids, past: 0, cache: new ContiguousLatentCache(m.config.layers, m.cacheWidth), logits: "all" as const, temperature }));
    const fresh = await m.forward(steps(0.7));
    const first = await m.forward(steps(0.7), { reuseOutputs: true });
    expect(first.logits.map((l) => [...l!])).toEqual(fresh.logits.map((l) => [...l!]));
    expect(first.probs.map((p) => [...p!])).toEqual(fresh.probs.map((p) => [...p!]));
    const kept = first.logits[0]!.buffer;
    const second = await m.forward(steps(1.3), { reuseOutputs: true });
    // Native: the next step writes into the same memory; wasm allocates as before.
    expect(second.logits[0]!.buffer === kept).toBe(m.runtime.backend === "node");
    const again = await m.forward(steps(1.3));
    expect(second.probs.map((p) => [...p!])).toEqual(again.probs.map((p) => [...p!]));
  });
  it.each(["v3", "v3web"])("%s: a step whose rows read only probabilities fetches no logits; one row that reads them fetches them", async (name) => {
    const m = models[name]!;
    const steps = (rawLogits: boolean[]) => [prompt(9, 21), prompt(4, 22)].map((ids, i) => ({ tokens: ids, past: 0, cache: new ContiguousLatentCache(m.config.layers, m.cacheWidth), logits: "last" as const, temperature: 0.7, rawLogits: rawLogits[i] }));
    const both = await m.forward(steps([true, true]), { reuseOutputs: true });
    const bothProbs = both.probs.map((p) => [...p!]);
    const probsOnly = await m.forward(steps([false, false]), { reuseOutputs: true });
    expect(probsOnly.logits).toEqual([null, null]);
    expect(probsOnly.probs.map((p) => [...p!])).toEqual(bothProbs);
    const mixed = await m.forward(steps([false, true]));
    expect(mixed.logits.every((l) => l !== null)).toBe(true);
    expect(mixed.probs.map((p) => [...p!])).toEqual(bothProbs);
  });
  it.each(["v3", "v3web"])("%s: the head draws the token the sampler would draw from the same probabilities with the same variate", async (name) => {
    const m = models[name]!;
    const prompts = [prompt(9, 31), prompt(4, 32), prompt(12, 33)];
    const params = (seed: number): SamplingParams => ({ temperature: 0.9, topP: 1, topK: 0, presencePenalty: 0, frequencyPenalty: 0, logitBias: new Map(), seed, logprobs: false, topLogprobs: 0 });
    const step = (draws: (number | null)[]) => prompts.map((ids, i) => ({ tokens: ids, past: 0, cache: new ContiguousLatentCache(m.config.layers, m.cacheWidth), logits: "last" as const, temperature: 0.9, rawLogits: false, draw: draws[i] }));
    const { probs } = await m.forward(step([null, null, null]));
    const seen = new Set<number>();
    for (let round = 0; round < 12; round++) {
      const seeds = prompts.map((_, i) => 100 * round + i);
      const variates = seeds.map((seed) => new SequenceSampler(params(seed)).headDraw());
      const r = await m.forward(step(variates));
      expect(r.probs).toEqual([null, null, null]);
      expect(r.logits).toEqual([null, null, null]);
      // A twin sampler, same seed, drawing in JavaScript from the probabilities.
      expect(r.picked).toEqual(seeds.map((seed, i) => new SequenceSampler(params(seed)).sample(null, probs[i]!).token));
      for (const t of r.picked) seen.add(t!);
    }
    expect(seen.size).toBeGreaterThan(10);
    // A row that is not drawn still gets its probabilities in the same step.
    const mixed = await m.forward(step([0.5, null, 0.25]));
    expect(mixed.picked[1]).toBeNull();
    expect([...mixed.probs[1]!]).toEqual([...probs[1]!]);
    await expect(m.forward([{ ...step([0.5])[0]!, temperature: null }])).rejects.toThrow(/draw needs/);
  });
  it.each(["v3", "v3web"])("%s: the head's argmax is the highest logit, and a step of argmax rows fetches no logits", async (name) => {
    const m = models[name]!;
    const prompts = [prompt(9, 41), prompt(4, 42), prompt(12, 43)];
    const step = (argmax: boolean) => prompts.map((ids) => ({ tokens: ids, past: 0, cache: new ContiguousLatentCache(m.config.layers, m.cacheWidth), logits: "last" as const, rawLogits: !argmax, argmax }));
    const { logits } = await m.forward(step(false));
    const best = logits.map((l) => l!.indexOf(Math.max(...l!)));
    const r = await m.forward(step(true));
    expect(r.logits).toEqual([null, null, null]);
    expect(r.picked).toEqual(best);
    await expect(m.forward([{ ...step(true)[0]!, logits: "all" as const }])).rejects.toThrow(/argmax needs/);
  });
});

describe("inputs", () => {
  it("rejects token ids outside the vocabulary and positions beyond the context", async () => {
    const m = models.v3!;
    const cache = new ContiguousLatentCache(m.config.layers, m.cacheWidth);
    await expect(m.forward([{ tokens: [m.config.vocabSize], past: 0, cache, logits: "last" }])).rejects.toThrow(/vocabulary/);
    await expect(m.forward([{ tokens: [-1], past: 0, cache, logits: "last" }])).rejects.toThrow(/vocabulary/);
    await expect(m.forward([{ tokens: [5], past: m.config.maxPositions, cache, logits: "last" }])).rejects.toThrow(/max_position/);
  });
});
