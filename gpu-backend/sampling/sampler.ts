import { Rng } from "../engine/rng.js";

export interface SamplingParams {
  /** 0 → greedy. */
  temperature: number;
  topP: number;
  /** ≤ 0 → off. */
  topK: number;
  presencePenalty: number;
  frequencyPenalty: number;
  logitBias: Map<number, number>;
  /** Seeds this sequence's own random stream, so its tokens do not depend on the rest of the batch. */
  seed: number;
  /** How many alternatives to report per token (0 = none); logprobs are reported when ≥ 0 and `logprobs` is set. */
  logprobs: boolean;
  topLogprobs: number;
}

export interface Sampled {
  token: number;
  /** log P(token) under the model's raw distribution (before temperature and penalties). */
  logprob: number;
  top: { token: number; logprob: number }[];
}

/**
 * Per-sequence sampling. The model's logits are processed in OpenAI's order (logit bias, presence/frequency
 * penalties over generated tokens, temperature, top-k, top-p) and sampled with the sequence's seeded RNG.
 */
export class SequenceSampler {
  private readonly rng: Rng;
  private readonly counts = new Map<number, number>();

  constructor(private readonly p: SamplingParams) {
    this.rng = new Rng(p.seed);
  }

  /** Counts a token produced by this sequence (penalties look at generated tokens only). */
  observe(token: number): void {
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
  }

  sample(raw: Float32Array): Sampled {
    const V = raw.length;
    const l = new Float64Array(V);
    for (let i = 0; i < V; i++) l[i] = raw[i]!;
    for (const [t, b] of this.p.logitBias) if (t < V) l[t]! += b;
    if (this.p.presencePenalty || this.p.frequencyPenalty) {
      for (const [t, c] of this.counts) l[t]! -= c * this.p.frequencyPenalty + this.p.presencePenalty;
    }

    let token: number;
    if (this.p.temperature < 1e-5) {
      token = 0;
      for (let i = 1; i < V; i++) if (l[i]! > l[token]!) token = i;
    } else {
      token = this.draw(l);
    }
    const out: Sampled = { token, logprob: 0, top: [] };
    if (this.p.logprobs) {
      const lse = logSumExp(raw);
      out.logprob = raw[token]! - lse;
      out.top = topN(raw, this.p.topLogprobs).map((t) => ({ token: t, logprob: raw[t]! - lse }));
    }
    return out;
  }

  private draw(l: Float64Array): number {
    const V = l.length;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (l[i]! > max) max = l[i]!;
    const probs = new Float64Array(V);
    for (let i = 0; i < V; i++) probs[i] = Math.exp((l[i]! - max) / this.p.temperature);

    let candidates: number[] | null = null;
    if (this.p.topK > 0 && this.p.topK < V) candidates = topN(probs, this.p.topK);
    if (this.p.topP < 1) candidates = nucleus(probs, this.p.topP, candidates);

    if (candidates) {
      let total = 0;
      for (const i of candidates) total += probs[i]!;
      let u = this.rng.uniform() * total;
      for (const i of candidates) if ((u -= probs[i]!) <= 0) return i;
      return candidates[candidates.length - 1]!;
    }
    let total = 0;
    for (let i = 0; i < V; i++) total += probs[i]!;
    let u = this.rng.uniform() * total;
    for (let i = 0; i < V; i++) if ((u -= probs[i]!) <= 0) return i;
    return V - 1;
  }
}

export function logSumExp(x: Float32Array): number {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  let s = 0;
  for (const v of x) s += Math.exp(v - max);
  return max + Math.log(s);
}

/** Indices of the n largest values, descending (ties: lower index first). O(V·n) for the small n used here. */
export function topN(x: ArrayLike<number>, n: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (best.length === n && v <= x[best[n - 1]!]!) continue;
    let k = best.length < n ? best.length : n - 1;
    if (best.length < n) best.push(i);
    while (k > 0 && x[best[k - 1]!]! < v) {
      best[k] = best[k - 1]!;
      k--;
    }
    best[k] = i;
  }
  return best;
}

/**
 * The smallest set of tokens (most probable first) whose probability mass reaches `p`. Sorting every token
 * is avoided: tokens far below the leader cannot be needed unless the near ones fall short, which is checked.
 */
function nucleus(probs: Float64Array, p: number, within: number[] | null): number[] {
  const pool = within ?? Array.from(probs.keys());
  let total = 0;
  let max = 0;
  for (const i of pool) {
    total += probs[i]!;
    if (probs[i]! > max) max = probs[i]!;
  }
  for (const cut of [max * 1e-4, 0]) {
    const cand = pool.filter((i) => probs[i]! >= cut).sort((a, b) => probs[b]! - probs[a]! || a - b);
    let acc = 0;
    for (let k = 0; k < cand.length; k++) {
      acc += probs[cand[k]!]!;
      if (acc >= p * total) return cand.slice(0, k + 1);
    }
  }
  return pool;
}
