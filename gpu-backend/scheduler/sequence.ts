import { PagedLatentCache, type LatentStore } from "../kv/paged-cache.js";
import type { SamplingParams, Sampled } from "../sampling/sampler.js";
import { SequenceSampler, scoreToken } from "../sampling/sampler.js";
import { StopMatcher } from "../sampling/stop-matcher.js";
import { Detokenizer } from "../text/detokenizer.js";

export type FinishReason = "stop" | "length" | "cancelled" | "error";

/** What the scheduler reports to whoever submitted a sequence (the HTTP layer). */
export interface SequenceSink {
  /** New text (possibly empty while a character or a stop string is incomplete) for one generated token. */
  onToken(delta: string, sampled: Sampled): void;
  /**
   * With `promptLogprobs`: called once, before the first token, with the score of every prompt token after the
   * first (entry k is prompt token k + 1 given the tokens before it).
   */
  onPrompt?(scores: Sampled[]): void;
  onFinish(reason: FinishReason, stats: SequenceStats, error?: Error): void;
}

export interface SequenceStats {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens whose latents came from the prefix cache at admission. */
  cachedPromptTokens: number;
}

export interface SequenceSpec {
  id: string;
  /** The prefix-cache chain seed (tenant and model). */
  salt: string;
  tenant: string;
  prompt: number[];
  maxTokens: number;
  stop: string[];
  eosIds: number[];
  ignoreEos: boolean;
  sampling: SamplingParams;
  /** When set, score the prompt's tokens during prefill, with this many alternatives each (`echo` with `logprobs`). */
  promptLogprobs?: number | null;
  decode: (ids: number[]) => string;
  sink: SequenceSink;
}

/**
 * One generation: prompt then sampled tokens, the block table holding their latents, and the text state
 * (detokenizer, stop matcher). `computed` counts tokens whose latents are in the cache.
 */
export class Sequence {
  readonly tokens: number[];
  readonly blocks: number[] = [];
  /** Hash of each full block in `blocks`, in order (the prefix-cache chain). */
  readonly blockHashes: string[] = [];
  computed = 0;
  generated = 0;
  cachedPromptTokens = 0;
  admittedOnce = false;
  cancelled = false;
  finished = false;
  readonly sampler: SequenceSampler;
  private readonly detok: Detokenizer;
  private readonly stops: StopMatcher;
  cache: PagedLatentCache | null = null;
  /** Scores of prompt tokens 1, 2, … so far (see `SequenceSink.onPrompt`). */
  readonly promptScores: Sampled[] = [];

  constructor(readonly spec: SequenceSpec, readonly arrival: number) {
    this.tokens = [...spec.prompt];
    this.sampler = new SequenceSampler(spec.sampling);
    this.detok = new Detokenizer(spec.decode);
    this.stops = new StopMatcher(spec.stop);
  }

  get promptLength(): number {
    return this.spec.prompt.length;
  }

  /** Tokens still to run through the model before the next token can be sampled. */
  get pending(): number {
    return this.tokens.length - this.computed;
  }

  /** Whether prefill must still produce logits for prompt positions (so the prefix cache cannot stand in). */
  get scoringPrompt(): boolean {
    return this.spec.promptLogprobs != null && this.promptScores.length < this.promptLength - 1;
  }

  /**
   * Scores prompt tokens from a prefill chunk's logits: `rows` holds one row per token from position `first`,
   * and row r predicts token first + r + 1. Tokens already scored (before a preemption) are skipped.
   */
  scorePrompt(rows: Float32Array, first: number, vocab: number): void {
    const top = this.spec.promptLogprobs ?? 0;
    for (let r = 0; r * vocab < rows.length; r++) {
      const next = first + r + 1;
      if (next >= this.promptLength) break;
      if (next !== this.promptScores.length + 1) continue;
      this.promptScores.push(scoreToken(rows.subarray(r * vocab, (r + 1) * vocab), this.tokens[next]!, top));
    }
  }

  attach(store: LatentStore): void {
    this.cache = new PagedLatentCache(store, this.blocks);
  }

  /** Whether the prompt is all it asks for (`max_tokens` 0 with echo): it ends once the prompt is computed. */
  get promptOnly(): boolean {
    return this.spec.maxTokens === 0;
  }

  /** Hands over the prompt's scores (when asked for) before the first token, or at the end of a prompt-only one. */
  private deliverPrompt(): void {
    if (this.spec.promptLogprobs != null) this.spec.sink.onPrompt?.(this.promptScores);
  }

  /** Ends a prompt-only sequence whose prompt is computed (and scored). */
  endPrompt(): FinishReason {
    this.deliverPrompt();
    return "length";
  }

  /** Appends a sampled token; returns the finish reason if generation is over. */
  accept(s: Sampled): FinishReason | null {
    if (this.generated === 0) this.deliverPrompt();
    this.tokens.push(s.token);
    this.generated++;
    this.sampler.observe(s.token);
    const isEos = !this.spec.ignoreEos && this.spec.eosIds.includes(s.token);
    const text = isEos ? "" : this.detok.push(s.token);
    const { emit, stopped } = this.stops.push(text);
    if (stopped || isEos) {
      this.spec.sink.onToken(emit, s);
      return "stop";
    }
    if (this.generated >= this.spec.maxTokens) {
      this.spec.sink.onToken(emit + this.stops.push(this.detok.flush()).emit + this.stops.flush(), s);
      return "length";
    }
    this.spec.sink.onToken(emit, s);
    return null;
  }

  stats(): SequenceStats {
    return { promptTokens: this.promptLength, completionTokens: this.generated, cachedPromptTokens: this.cachedPromptTokens };
  }
}
