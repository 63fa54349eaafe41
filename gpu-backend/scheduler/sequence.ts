import { PagedLatentCache, type LatentStore } from "../kv/paged-cache.js";
import type { SamplingParams, Sampled } from "../sampling/sampler.js";
import { SequenceSampler } from "../sampling/sampler.js";
import { StopMatcher } from "../sampling/stop-matcher.js";
import { Detokenizer } from "../text/detokenizer.js";

export type FinishReason = "stop" | "length" | "cancelled" | "error";

/** What the scheduler reports to whoever submitted a sequence (the HTTP layer). */
export interface SequenceSink {
  /** New text (possibly empty while a character or a stop string is incomplete) for one generated token. */
  onToken(delta: string, sampled: Sampled): void;
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

  attach(store: LatentStore): void {
    this.cache = new PagedLatentCache(store, this.blocks);
  }

  /** Appends a sampled token; returns the finish reason if generation is over. */
  accept(s: Sampled): FinishReason | null {
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
