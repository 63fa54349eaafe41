import { describe, expect, it, vi } from "vitest";
import type { DeepSeekModel, SequenceStep } from "../../gpu-backend/engine/model.js";
import { Rng } from "../../gpu-backend/engine/rng.js";
import { FAMILY_MIN_SPARED_ROWS, prefixFamilies } from "../../gpu-backend/engine/prefix-families.js";
import { BlockPool, blockHash, chainSeed } from "../../gpu-backend/kv/block-pool.js";
import { SequenceSampler, type SamplingParams } from "../../gpu-backend/sampling/sampler.js";
import { StopMatcher } from "../../gpu-backend/sampling/stop-matcher.js";
import { Scheduler } from "../../gpu-backend/scheduler/scheduler.js";
import type { SequenceSpec } from "../../gpu-backend/scheduler/sequence.js";
import { TenantQueues } from "../../gpu-backend/scheduler/tenant-queues.js";
import { Detokenizer } from "../../gpu-backend/text/detokenizer.js";
import { heldJsonResponse } from "../../gpu-backend/server/json-response.js";

describe("BlockPool", () => {
  it("hands out free blocks, then evicts cached ones least-recently-used first", () => {
    const pool = new BlockPool(3, 4);
    const [a, b, c] = [pool.allocate()!, pool.allocate()!, pool.allocate()!];
    expect(pool.allocate()).toBeNull();
    pool.register(a, "ha");
    pool.register(b, "hb");
    pool.release(b);
    pool.release(a);
    expect(pool.available).toBe(2);
    expect(pool.lookup("ha")).toBe(a); // a is used again: b is now the LRU cached block
    const d = pool.allocate();
    expect(d).toBe(b);
    expect(pool.lookup("hb")).toBeNull();
    pool.release(c);
    expect(pool.allocate()).toBe(c);
  });

  it("refuses double release", () => {
    const pool = new BlockPool(1, 4);
    const a = pool.allocate()!;
    pool.release(a);
    expect(() => pool.release(a)).toThrow();
  });

  it("chains hashes per tenant: same tokens, different tenant → different chain", () => {
    const t = [1, 2, 3, 4];
    expect(blockHash(chainSeed("a", "m"), t)).toBe(blockHash(chainSeed("a", "m"), t));
    expect(blockHash(chainSeed("a", "m"), t)).not.toBe(blockHash(chainSeed("b", "m"), t));
    expect(blockHash(chainSeed("a", "m"), t)).not.toBe(blockHash(chainSeed("a", "m2"), t));
    const h1 = blockHash(chainSeed("a", "m"), t);
    expect(blockHash(h1, t)).not.toBe(h1);
  });
});

describe("prefixFamilies", () => {
  const bs = 16;
  /** A sequence whose cache starts with `lead` (shared) blocks, then blocks of its own, `past` positions cached. */
  let next = 1000;
  const seq = (lead: number[], past: number) => ({
    past,
    cache: { paged: { pools: [], blockSize: bs, zeroBlock: 0, blocks: [...lead, ...Array.from({ length: 8 }, () => next++)] } },
  });
  const prompt = (first: number, blocks: number) => Array.from({ length: blocks }, (_, k) => first + k);
  const wide = FAMILY_MIN_SPARED_ROWS / bs; // blocks two members must share to repay a run

  it("splits off each prefix's sequences when they spare enough rows, the rest staying together in order", () => {
    const a = prompt(1, wide);
    const b = prompt(500, wide / 2);
    const seqs = [seq(a, wide * bs + 5), seq([], 40), seq(b, (wide / 2) * bs), seq(a, wide * bs + 9), seq(b, (wide / 2) * bs + 1), seq(b, (wide / 2) * bs + 3), seq([], 3)];
    expect(prefixFamilies([0, 1, 2, 3, 4, 5, 6], seqs, bs)).toEqual([[0, 3], [2, 4, 5], [1, 6]]);
  });

  it("counts only blocks every member has wholly in its past, and keeps a group whole when no family pays", () => {
    const a = prompt(1, wide);
    // The second member has cached only half of the shared prompt so far: together they spare too little.
    const seqs = [seq(a, wide * bs), seq(a, (wide / 2) * bs), seq([], 20)];
    expect(prefixFamilies([0, 1, 2], seqs, bs)).toEqual([[0, 1, 2]]);
    // Once it has the whole prompt, they do.
    seqs[1]!.past = wide * bs;
    expect(prefixFamilies([0, 1, 2], seqs, bs)).toEqual([[0, 1], [2]]);
  });
});

describe("StopMatcher", () => {
  it("holds back a possible stop prefix and cuts at the stop", () => {
    const m = new StopMatcher(["STOP"]);
    expect(m.push("hello S")).toEqual({ emit: "hello ", stopped: false });
    expect(m.push("T")).toEqual({ emit: "", stopped: false });
    expect(m.push("x")).toEqual({ emit: "STx", stopped: false });
    expect(m.push("yS")).toEqual({ emit: "y", stopped: false });
    expect(m.push("TOP and more")).toEqual({ emit: "", stopped: true });
  });
  it("takes the earliest of several stops and flushes held text at the end", () => {
    const m = new StopMatcher(["\n\n", "END"]);
    expect(m.push("a\nbEN")).toEqual({ emit: "a\nb", stopped: false });
    expect(m.flush()).toBe("EN");
    const m2 = new StopMatcher(["xyz", "y"]);
    expect(m2.push("axyz")).toEqual({ emit: "a", stopped: true }); // "xyz" starts first
  });
});

describe("Detokenizer", () => {
  it("releases text only once a multi-byte character is complete", () => {
    // A toy byte-level vocabulary: each id is one UTF-8 byte.
    const decode = (ids: number[]) => new TextDecoder().decode(Uint8Array.from(ids));
    const d = new Detokenizer(decode);
    const bytes = [...new TextEncoder().encode("a€b")]; // € is 3 bytes
    expect(bytes.map((b) => d.push(b))).toEqual(["a", "", "", "€", "b"]);
  });
});

describe("sampler", () => {
  const base: SamplingParams = { temperature: 1, topP: 1, topK: 0, presencePenalty: 0, frequencyPenalty: 0, logitBias: new Map(), seed: 1, logprobs: false, topLogprobs: 0 };
  const logits = Float32Array.from([2, 1, 0.5, 0, -1, 3, 0.1, 0.2]);

  it("is greedy at temperature 0", () => {
    expect(new SequenceSampler({ ...base, temperature: 0 }).sample(logits).token).toBe(5);
  });
  it("is reproducible per seed", () => {
    const draw = (seed: number) => {
      const s = new SequenceSampler({ ...base, seed });
      return Array.from({ length: 20 }, () => s.sample(logits).token);
    };
    expect(draw(3)).toEqual(draw(3));
    expect(draw(3)).not.toEqual(draw(4));
  });
  it("draws the same tokens from the model's softmax as from its logits; adjusted logits opt out of it", () => {
    const softmax = (t: number) => {
      const e = [...logits].map((v) => Math.exp(v / t));
      const z = e.reduce((a, b) => a + b, 0);
      return Float32Array.from(e, (v) => v / z);
    };
    for (const params of [{ temperature: 0.7 }, { temperature: 1.3, topK: 3 }, { temperature: 1, topP: 0.8 }]) {
      const fromLogits = new SequenceSampler({ ...base, ...params, seed: 5 });
      const fromProbs = new SequenceSampler({ ...base, ...params, seed: 5 });
      expect(fromProbs.headTemperature()).toBe(params.temperature);
      const probs = softmax(params.temperature);
      const a = Array.from({ length: 200 }, () => fromLogits.sample(logits).token);
      const b = Array.from({ length: 200 }, () => fromProbs.sample(logits, probs).token);
      expect(b).toEqual(a);
      expect(new Set(a).size).toBeGreaterThan(1);
      // Without logprobs the softmax is all it reads, so the model need not hand the logits over.
      const probsOnly = new SequenceSampler({ ...base, ...params, seed: 5 });
      expect(probsOnly.needsRawLogits()).toBe(false);
      expect(Array.from({ length: 200 }, () => probsOnly.sample(null, probs).token)).toEqual(a);
    }
    // The head draws for plain temperature sampling only, with the variate `sample` would have used.
    const rng = new Rng(8);
    const withHead = new SequenceSampler({ ...base, temperature: 0.7, seed: 8 });
    expect([withHead.headDraw(), withHead.headDraw()]).toEqual([rng.uniform(), rng.uniform()]);
    for (const own of [{ temperature: 0 }, { temperature: 0.7, topK: 3 }, { temperature: 0.7, topP: 0.9 }, { temperature: 0.7, logprobs: true }, { temperature: 0.7, logitBias: new Map([[1, 5]]) }]) {
      expect(new SequenceSampler({ ...base, ...own }).headDraw()).toBeNull();
    }
    for (const needs of [{ temperature: 0, logprobs: true }, { temperature: 0, logitBias: new Map([[1, 5]]) }, { temperature: 0.7, logprobs: true }, { temperature: 0.7, logitBias: new Map([[1, 5]]) }]) {
      const s = new SequenceSampler({ ...base, ...needs });
      expect(s.needsRawLogits()).toBe(true);
      expect(s.headArgmax()).toBe(false);
      expect(() => s.sample(null, softmax(0.7))).toThrow(/raw logits/);
    }
    // Plain greedy decoding is the head's argmax: no logits needed, until a penalty applies.
    const greedy = new SequenceSampler({ ...base, temperature: 0, frequencyPenalty: 0.5 });
    expect([greedy.headArgmax(), greedy.needsRawLogits()]).toEqual([true, false]);
    greedy.observe(3);
    expect([greedy.headArgmax(), greedy.needsRawLogits()]).toEqual([false, true]);
    expect(new SequenceSampler({ ...base, temperature: 0 }).headTemperature()).toBeNull();
    expect(new SequenceSampler({ ...base, logitBias: new Map([[1, 5]]) }).headTemperature()).toBeNull();
    const penalised = new SequenceSampler({ ...base, presencePenalty: 1 });
    expect(penalised.headTemperature()).toBe(1);
    penalised.observe(2);
    expect(penalised.headTemperature()).toBeNull();
  });
  it("top_k and top_p restrict the support", () => {
    const k = new SequenceSampler({ ...base, topK: 2, seed: 9 });
    // Probabilities: P(5) ≈ 0.565, P(0) ≈ 0.208, the rest below 0.08 each.
    const p50 = new SequenceSampler({ ...base, topP: 0.5, seed: 9 });
    const p70 = new SequenceSampler({ ...base, topP: 0.7, seed: 9 });
    const seen70 = new Set<number>();
    for (let i = 0; i < 200; i++) {
      expect([5, 0]).toContain(k.sample(logits).token);
      expect(p50.sample(logits).token).toBe(5);
      seen70.add(p70.sample(logits).token);
    }
    expect([...seen70].sort()).toEqual([0, 5]);
  });
  it("logit bias and penalties move the choice", () => {
    expect(new SequenceSampler({ ...base, temperature: 0, logitBias: new Map([[4, 100]]) }).sample(logits).token).toBe(4);
    const s = new SequenceSampler({ ...base, temperature: 0, frequencyPenalty: 2 });
    s.observe(5);
    expect(s.sample(logits).token).toBe(0); // 3 - 2 = 1 < 2
  });
  it("reports log-probabilities from the raw distribution", () => {
    const r = new SequenceSampler({ ...base, temperature: 0, logprobs: true, topLogprobs: 2 }).sample(logits);
    const lse = Math.log([...logits].reduce((a, x) => a + Math.exp(x), 0));
    expect(r.logprob).toBeCloseTo(3 - lse, 6);
    expect(r.top.map((t) => t.token)).toEqual([5, 0]);
  });
});

describe("TenantQueues", () => {
  it("serves tenants round-robin", () => {
    const q = new TenantQueues<string>();
    for (let i = 0; i < 5; i++) q.push("flood", `f${i}`);
    q.push("single", "s0");
    const order: string[] = [];
    while (q.size) {
      const x = q.peek()!;
      order.push(x);
      q.remove(x.startsWith("f") ? "flood" : "single", x);
    }
    expect(order.slice(0, 2)).toEqual(["f0", "s0"]);
  });
  it("counts each tenant's items and can queue an admitted request's work ahead of its tenant's others", () => {
    const q = new TenantQueues<string>();
    q.push("a", "a0");
    q.push("a", "a1");
    q.push("a", "a0-more", true);
    expect(q.sizeOf("a")).toBe(3);
    expect(q.sizeOf("b")).toBe(0);
    expect(q.peek()).toBe("a0-more");
  });
});

describe("heldJsonResponse", () => {
  it("sends a space per keepalive period until the answer is ready, then the answer's pieces over a few chunks", async () => {
    vi.useFakeTimers();
    try {
      let ready!: (pieces: string[]) => void;
      const res = heldJsonResponse(new Promise((r) => (ready = r)), 1000, () => {});
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/json");
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      for (let k = 0; k < 3; k++) {
        const next = reader.read();
        await vi.advanceTimersByTimeAsync(1000);
        expect(decoder.decode((await next).value)).toBe(" ");
      }
      const items = Array.from({ length: 10_000 }, (_, i) => JSON.stringify({ i, s: `é\n${"x".repeat(150)}` }));
      const next = reader.read();
      await vi.advanceTimersByTimeAsync(400);
      ready(['{"items":[', ...items.map((x, i) => (i ? `,${x}` : x)), "]}"]);
      let text = decoder.decode((await next).value, { stream: true });
      let chunks = 1;
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        chunks++;
        text += decoder.decode(r.value, { stream: true });
      }
      expect(chunks).toBe(3);
      expect(JSON.parse(text)).toEqual({ items: items.map((x) => JSON.parse(x)) });
    } finally {
      vi.useRealTimers();
    }
  });

  it("tells its owner when the client cancels the body", async () => {
    let cancelled = 0;
    const res = heldJsonResponse(new Promise(() => {}), 1000, () => cancelled++);
    await res.body!.cancel();
    expect(cancelled).toBe(1);
  });
});

/** A stand-in for the model: logits depend only on (last token, position), so runs are deterministic. */
function fakeModel(vocab = 16): DeepSeekModel {
  /** The one high logit of a token's row. */
  const next = (s: SequenceStep, k: number) => (s.tokens[k]! * 7 + (s.past + k) * 3 + 2) % vocab;
  const forward = async (seqs: SequenceStep[]) => {
    const row = new Float32Array(1);
    for (const s of seqs) for (let k = 0; k < s.tokens.length; k++) s.cache.write(0, s.past + k, row);
    return {
      logits: seqs.map((s) => {
        if (s.logits === "none" || s.rawLogits === false) return null;
        // One row per token for "all", the last token's row otherwise.
        const first = s.logits === "all" ? 0 : s.tokens.length - 1;
        const l = new Float32Array((s.tokens.length - first) * vocab);
        for (let k = first; k < s.tokens.length; k++) l[(k - first) * vocab + next(s, k)] = 10;
        return l;
      }),
      probs: seqs.map(() => null),
      // Its sequences are greedy: the head's pick is the argmax, never a draw.
      picked: seqs.map((s) => {
        if (s.draw != null) throw new Error("the stand-in model does not draw");
        return s.argmax ? next(s, s.tokens.length - 1) : null;
      }),
    };
  };
  return { config: { layers: 1, maxPositions: 4096, vocabSize: vocab }, cacheWidth: 1, forward } as unknown as DeepSeekModel;
}

function spec(tenant: string, prompt: number[], maxTokens: number, out: { order: string[]; tokens: number[] }, id: string): SequenceSpec {
  return {
    id,
    salt: chainSeed(tenant, "m"),
    tenant,
    prompt,
    maxTokens,
    stop: [],
    eosIds: [],
    ignoreEos: true,
    sampling: { temperature: 0, topP: 1, topK: 0, presencePenalty: 0, frequencyPenalty: 0, logitBias: new Map(), seed: 1, logprobs: false, topLogprobs: 0 },
    decode: (ids) => ids.join(","),
    sink: {
      onToken: (_d, s) => out.tokens.push(s.token),
      onFinish: () => out.order.push(id),
    },
  };
}

describe("Scheduler (with a deterministic stand-in model)", () => {
  it("scores every prompt token once (echo with logprobs) across prefill chunks, preemption and a cached prefix", async () => {
    const vocab = 16;
    // The stand-in's favourite next token after `token` at `pos`, and a token's logprob under its one-hot row.
    const favourite = (token: number, pos: number) => (token * 7 + pos * 3 + 2) % vocab;
    const lse = Math.log(Math.exp(10) + vocab - 1);
    const prompt = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
    for (const numBlocks of [64, 6]) {
      const sched = new Scheduler(fakeModel(vocab), { maxBatchTokens: 4, maxRunning: 4, numBlocks, blockSize: 4 });
      const warm = { order: [] as string[], tokens: [] as number[] };
      sched.submit(spec("t", prompt, 2, warm, "warm"));
      sched.start();
      while (warm.order.length === 0) await new Promise((r) => setTimeout(r, 1));
      const scores: number[][] = [];
      const outs = Array.from({ length: 3 }, () => ({ order: [] as string[], tokens: [] as number[] }));
      outs.forEach((o, i) => {
        const s = spec("t", prompt, 6, o, `s${i}`);
        sched.submit({ ...s, promptLogprobs: 1, sink: { ...s.sink, onPrompt: (sc) => scores.push(sc.map((x) => x.token)) } });
      });
      while (outs.some((o) => o.order.length === 0)) await new Promise((r) => setTimeout(r, 1));
      const stats = sched.stats();
      await sched.stop();
      expect(scores).toEqual([prompt.slice(1), prompt.slice(1), prompt.slice(1)]);
      if (numBlocks === 6) expect(stats.preemptions).toBeGreaterThan(0);
      // Scored requests recompute the prompt rather than take it from the cache the warm-up filled.
      expect(stats.cachedTokens).toBe(0);
    }
    // Logprob values: a token is the stand-in's favourite (logprob 10 − lse) or not (−lse).
    const sched = new Scheduler(fakeModel(vocab), { maxBatchTokens: 3, maxRunning: 1, numBlocks: 16, blockSize: 4 });
    const got: { token: number; logprob: number }[] = [];
    const o = { order: [] as string[], tokens: [] as number[] };
    const s = spec("t", prompt, 1, o, "v");
    sched.submit({ ...s, promptLogprobs: 0, sink: { ...s.sink, onPrompt: (sc) => got.push(...sc) } });
    sched.start();
    while (o.order.length === 0) await new Promise((r) => setTimeout(r, 1));
    await sched.stop();
    expect(got.map((g) => g.logprob)).toEqual(prompt.slice(1).map((t, k) => (favourite(prompt[k]!, k) === t ? 10 : 0) - lse).map((x) => expect.closeTo(x, 5)));
  });

  it("is fair between tenants: one tenant's flood does not starve another's single request", async () => {
    const sched = new Scheduler(fakeModel(), { maxBatchTokens: 64, maxRunning: 2, numBlocks: 64, blockSize: 4 });
    const out = { order: [] as string[], tokens: [] as number[] };
    for (let i = 0; i < 10; i++) sched.submit(spec("flood", [1, 2, 3], 6, out, `flood-${i}`));
    sched.submit(spec("single", [4, 5, 6], 6, out, "single"));
    sched.start();
    while (out.order.length < 11) await new Promise((r) => setTimeout(r, 1));
    await sched.stop();
    expect(out.order.indexOf("single")).toBeLessThanOrEqual(2);
  });

  it("preempts when blocks run out and still produces the same tokens", async () => {
    const run = async (numBlocks: number) => {
      const sched = new Scheduler(fakeModel(), { maxBatchTokens: 64, maxRunning: 8, numBlocks, blockSize: 4 });
      const outs = Array.from({ length: 6 }, () => ({ order: [] as string[], tokens: [] as number[] }));
      outs.forEach((o, i) => sched.submit(spec("t", [i + 1, i + 2, i + 3, i + 4, i + 5], 12, o, `s${i}`)));
      sched.start();
      while (outs.some((o) => o.order.length === 0)) await new Promise((r) => setTimeout(r, 1));
      const stats = sched.stats();
      await sched.stop();
      return { tokens: outs.map((o) => o.tokens), stats };
    };
    const roomy = await run(64);
    const tight = await run(6);
    expect(tight.tokens).toEqual(roomy.tokens);
    expect(tight.stats.preemptions).toBeGreaterThan(0);
    expect(roomy.stats.preemptions).toBe(0);
    expect(tight.stats.blocks.used).toBe(0);
  });
});
