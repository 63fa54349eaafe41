import { makeUsage, type Usage } from "../../src/openai/usage.js";
import type { Sampled } from "../sampling/sampler.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import type { FinishReason, Sequence, SequenceStats } from "../scheduler/sequence.js";
import type { GenerationPlan } from "./prompts.js";

export interface GenerationHandlers {
  onDelta(choice: number, text: string, sampled: Sampled): void;
  /** The prompt's token scores (plans with `promptLogprobs`), before the choice's first delta. */
  onPrompt(choice: number, scores: Sampled[]): void;
  onChoiceEnd(choice: number, reason: "stop" | "length"): void;
  /** Every choice ended normally. */
  onComplete(usage: Usage): void;
  /** A choice failed or was cancelled; the rest are cancelled. */
  onFailure(error: Error, usage: Usage): void;
}

/** Where a generation's latencies go (the pod's histograms), in seconds. */
export interface LatencyObserver {
  /** The request's arrival → its first token, of any choice. */
  firstToken(seconds: number): void;
  /** Between two consecutive tokens of one choice. */
  interToken(seconds: number): void;
  /** The request's arrival → its last choice's end, when every choice ended normally. */
  completed(seconds: number): void;
}

export interface GenerationContext {
  tenant: string;
  salt: string;
  requestId: string;
  eosIds: number[];
  decode: (ids: number[]) => string;
  /** When the request arrived (`performance.now()`), and where its latencies are recorded. */
  receivedAt: number;
  latency?: LatencyObserver;
}

/**
 * Runs one request's plan (prompts × n choices) as scheduler sequences and aggregates their outcome.
 * Usage counts each prompt once (with the prefix-cache hits of its first choice) and every choice's output.
 *
 * A prompt's other choices share its prefill: they are queued once its first choice has put the prompt's full
 * blocks in the prefix cache (at its first token), ahead of the tenant's later requests. Queued together, each
 * would compute the whole prompt again (n = 16 on a 1,000-token prompt: 16,000 prefill tokens instead of
 * ~1,000). With `echo` + `logprobs`, the first choice's prompt scores serve all of them.
 */
export class Generation {
  private readonly seqs: Sequence[] = [];
  private readonly stats = new Map<number, SequenceStats>();
  /** Per prompt whose other choices wait for its first: queues them. */
  private readonly deferred = new Map<number, () => void>();
  private remaining: number;
  private failed = false;
  /** Why `cancel` was called, when its caller said: the request's failure then reports it. */
  private cancelReason: Error | null = null;
  /** When each choice's latest token came (`performance.now()`); empty until the request's first. */
  private readonly lastTokenAt = new Map<number, number>();

  constructor(private readonly scheduler: Scheduler, private readonly plan: GenerationPlan, private readonly ctx: GenerationContext, private readonly h: GenerationHandlers) {
    this.remaining = plan.prompts.length * plan.n;
    plan.prompts.forEach((prompt, p) => {
      const first = p * plan.n;
      // With `echo` + `logprobs` the others wait even when nothing is cached: they echo the first's scores.
      if (plan.n > 1 && (plan.promptLogprobs || scheduler.prefixBlocks(prompt.length) > 0)) {
        this.submit(first, prompt, false);
        // Later, each to the front of the tenant's queue: in reverse, so they still run in choice order.
        this.deferred.set(p, () => {
          for (let k = plan.n - 1; k >= 1; k--) this.submit(first + k, prompt, true);
        });
      } else {
        for (let k = 0; k < plan.n; k++) this.submit(first + k, prompt, false);
      }
    });
  }

  private submit(choice: number, prompt: number[], front: boolean): void {
    const { plan, ctx } = this;
    const p = Math.floor(choice / plan.n);
    const first = choice % plan.n === 0;
    const seq = this.scheduler.submit({
      id: `${ctx.requestId}/${choice}`,
      salt: ctx.salt,
      tenant: ctx.tenant,
      prompt,
      maxTokens: plan.maxTokens,
      stop: plan.stop,
      eosIds: ctx.eosIds,
      ignoreEos: plan.ignoreEos,
      sampling: plan.sampling(choice),
      promptLogprobs: first ? (plan.promptLogprobs?.top ?? null) : null,
      decode: ctx.decode,
      sink: {
        onToken: (delta, sampled) => {
          this.timeToken(choice);
          if (first) this.releaseOthers(p);
          this.h.onDelta(choice, delta, sampled);
        },
        onPrompt: (scores) => {
          for (let k = 0; k < plan.n; k++) this.h.onPrompt(choice + k, scores);
        },
        onFinish: (reason, stats, error) => this.finished(choice, reason, stats, error),
      },
    }, front);
    this.seqs.push(seq);
  }

  private timeToken(choice: number): void {
    const now = performance.now();
    const last = this.lastTokenAt.get(choice);
    if (last !== undefined) this.ctx.latency?.interToken((now - last) / 1000);
    else if (this.lastTokenAt.size === 0) this.ctx.latency?.firstToken((now - this.ctx.receivedAt) / 1000);
    this.lastTokenAt.set(choice, now);
  }

  /** Queues prompt `p`'s other choices, once its first has cached the prompt (and only if all is still well). */
  private releaseOthers(p: number): void {
    const others = this.deferred.get(p);
    if (!others) return;
    this.deferred.delete(p);
    if (this.failed) return;
    // This runs inside a scheduler step: a refusal (a pod stopping) must fail this request, not the step.
    try {
      others();
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** The client went away (or stopped reading): cancel everything still running, and queue nothing more. */
  cancel(reason?: Error): void {
    this.cancelReason ??= reason ?? null;
    this.deferred.clear();
    for (const s of this.seqs) this.scheduler.cancel(s);
  }

  usage(): Usage {
    let prompt = 0;
    let cached = 0;
    let completion = 0;
    this.plan.prompts.forEach((p, i) => {
      prompt += p.length;
      cached += this.stats.get(i * this.plan.n)?.cachedPromptTokens ?? 0;
    });
    for (const s of this.stats.values()) completion += s.completionTokens;
    return makeUsage(prompt, completion, cached);
  }

  private finished(choice: number, reason: FinishReason, stats: SequenceStats, error?: Error): void {
    this.stats.set(choice, stats);
    this.remaining--;
    if (reason === "stop" || reason === "length") {
      // A first choice that ends without a token (the prompt alone) has not released the others yet.
      if (choice % this.plan.n === 0) this.releaseOthers(choice / this.plan.n);
      this.h.onChoiceEnd(choice, reason);
      if (this.remaining === 0 && !this.failed) {
        this.ctx.latency?.completed((performance.now() - this.ctx.receivedAt) / 1000);
        this.h.onComplete(this.usage());
      }
      return;
    }
    this.fail(error ?? this.cancelReason ?? new Error(reason === "cancelled" ? "generation was cancelled" : "generation failed"));
  }

  /** A choice failed or could not start: the rest are cancelled and the request fails, once. */
  private fail(error: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.cancel();
    this.h.onFailure(error, this.usage());
  }
}
