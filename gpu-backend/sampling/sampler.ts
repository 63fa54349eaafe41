import { Rng } from "../engine/rng.js";
import { topKIndices } from "../engine/top-k.js";
import { nucleus, topKCandidates } from "./candidates.js";

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

/** A token chosen without logprobs being asked for: nothing scored. */
export function unscored(token: number): Sampled {
  return { token, logprob: 0, top: [] };
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

  /** Whether logits are adjusted (bias, penalties on tokens already produced) before temperature. */
  private adjusts(): boolean {
    return this.p.logitBias.size > 0 || (this.counts.size > 0 && !!(this.p.presencePenalty || this.p.frequencyPenalty));
  }

  /**
   * The temperature at which the model's own softmax (computed with the logits) can be sampled from
   * directly for the next token, or null when logits must be adjusted first or decoding is greedy.
   */
  headTemperature(): number | null {
    return this.p.temperature >= 1e-5 && !this.adjusts() ? this.p.temperature : null;
  }

  /**
   * When the next token is drawn from the head's softmax over the whole vocabulary (no top-k or top-p, no
   * logprobs), the model can make the draw itself: this consumes the variate `sample` would have drawn with
   * and returns it, for `SequenceStep.draw`. Otherwise null, and `sample` (or `headArgmax`) is used.
   */
  headDraw(): number | null {
    if (this.headTemperature() === null || this.p.logprobs || this.p.topK > 0 || this.p.topP < 1) return null;
    return this.rng.uniform();
  }

  /** Greedy, with nothing adjusting the logits and no logprobs: the head's argmax is the next token. */
  headArgmax(): boolean {
    return this.p.temperature < 1e-5 && !this.adjusts() && !this.p.logprobs;
  }

  /**
   * Whether `sample` reads the raw logits; when not, `probs` (see `headTemperature`) is all it needs, or, for
   * `headArgmax`, nothing (the head's pick is the token).
   */
  needsRawLogits(): boolean {
    return !this.headArgmax() && (this.headTemperature() === null || this.p.logprobs);
  }

  /** `probs`: softmax(raw / headTemperature()), when the model computed it; `raw` may be null when `!needsRawLogits()`. */
  sample(raw: Float32Array | null, probs?: Float32Array | null): Sampled {
    if (!raw) {
      if (!probs || this.needsRawLogits()) throw new Error("this sampler needs the raw logits");
      return unscored(this.drawFrom(probs));
    }
    const V = raw.length;
    // Adjusted logits only when something adjusts them; otherwise the model's row is read as is.
    let l: Float32Array | Float64Array = raw;
    if (this.adjusts()) {
      const adjusted = scratch(0, V);
      for (let i = 0; i < V; i++) adjusted[i] = raw[i]!;
      for (const [t, b] of this.p.logitBias) if (t < V) adjusted[t]! += b;
      // With both penalties 0 this subtracts 0: no separate check needed.
      for (const [t, c] of this.counts) adjusted[t]! -= c * this.p.frequencyPenalty + this.p.presencePenalty;
      l = adjusted;
    }

    let token: number;
    if (this.p.temperature < 1e-5) {
      token = 0;
      for (let i = 1; i < V; i++) if (l[i]! > l[token]!) token = i;
    } else {
      token = probs && this.headTemperature() !== null ? this.drawFrom(probs) : this.draw(l);
    }
    return this.p.logprobs ? scoreToken(raw, token, this.p.topLogprobs) : unscored(token);
  }

  private draw(l: Float32Array | Float64Array): number {
    const V = l.length;
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (l[i]! > max) max = l[i]!;
    const probs = scratch(1, V);
    const invT = 1 / this.p.temperature;
    for (let i = 0; i < V; i++) probs[i] = Math.exp((l[i]! - max) * invT);
    return this.drawFrom(probs);
  }

  /** Top-k, top-p, then one draw from the sequence's RNG over (unnormalised) probabilities. */
  private drawFrom(probs: Float32Array | Float64Array): number {
    const V = probs.length;
    let candidates: number[] | null = null;
    // Top-p reads the top-k candidates most probable first; a draw alone needs only the set.
    if (this.p.topK > 0 && this.p.topK < V) candidates = topKCandidates(probs, this.p.topK, this.p.topP < 1);
    if (this.p.topP < 1) candidates = nucleus(probs, this.p.topP, candidates);

    let total = 0;
    if (candidates) {
      for (const i of candidates) total += probs[i]!;
      let u = this.rng.uniform() * total;
      for (const i of candidates) if ((u -= probs[i]!) <= 0) return i;
      return candidates[candidates.length - 1]!;
    }
    for (let i = 0; i < V; i++) total += probs[i]!;
    let u = this.rng.uniform() * total;
    for (let i = 0; i < V; i++) if ((u -= probs[i]!) <= 0) return i;
    return V - 1;
  }
}

/**
 * Scratch rows reused by every sampler: sampling is synchronous, so one pair serves the whole pod and a
 * step over a large vocabulary allocates nothing (per-token arrays were a large share of GC time).
 */
const scratchRows: Float64Array[] = [new Float64Array(0), new Float64Array(0)];
function scratch(slot: 0 | 1, n: number): Float64Array {
  if (scratchRows[slot]!.length < n) scratchRows[slot] = new Float64Array(n);
  return scratchRows[slot]!.subarray(0, n);
}

/** `token`'s log-probability under the model's raw logits row, with the `top` most likely tokens' (OpenAI's logprobs). */
export function scoreToken(raw: Float32Array, token: number, top: number): Sampled {
  const lse = logSumExp(raw);
  return { token, logprob: raw[token]! - lse, top: topKIndices(raw, top).map((t) => ({ token: t, logprob: raw[t]! - lse })) };
}

export function logSumExp(x: Float32Array): number {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  let s = 0;
  for (const v of x) s += Math.exp(v - max);
  return max + Math.log(s);
}
