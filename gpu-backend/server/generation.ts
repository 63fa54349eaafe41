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

export interface GenerationContext {
  tenant: string;
  salt: string;
  requestId: string;
  eosIds: number[];
  decode: (ids: number[]) => string;
}

/**
 * Runs one request's plan (prompts × n choices) as scheduler sequences and aggregates their outcome.
 * Usage counts each prompt once (with the prefix-cache hits of its first choice) and every choice's output.
 */
export class Generation {
  private readonly seqs: Sequence[] = [];
  private readonly stats = new Map<number, SequenceStats>();
  private remaining: number;
  private failed = false;

  constructor(private readonly scheduler: Scheduler, private readonly plan: GenerationPlan, ctx: GenerationContext, private readonly h: GenerationHandlers) {
    this.remaining = plan.prompts.length * plan.n;
    plan.prompts.forEach((prompt, p) => {
      for (let k = 0; k < plan.n; k++) {
        const choice = p * plan.n + k;
        this.seqs.push(
          scheduler.submit({
            id: `${ctx.requestId}/${choice}`,
            salt: ctx.salt,
            tenant: ctx.tenant,
            prompt,
            maxTokens: plan.maxTokens,
            stop: plan.stop,
            eosIds: ctx.eosIds,
            ignoreEos: plan.ignoreEos,
            sampling: plan.sampling(choice),
            promptLogprobs: plan.promptLogprobs?.top ?? null,
            decode: ctx.decode,
            sink: {
              onToken: (delta, sampled) => this.h.onDelta(choice, delta, sampled),
              onPrompt: (scores) => this.h.onPrompt(choice, scores),
              onFinish: (reason, stats, error) => this.finished(choice, reason, stats, error),
            },
          }),
        );
      }
    });
  }

  /** The client went away: cancel everything still running. */
  cancel(): void {
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
      this.h.onChoiceEnd(choice, reason);
      if (this.remaining === 0 && !this.failed) this.h.onComplete(this.usage());
      return;
    }
    if (this.failed) return;
    this.failed = true;
    this.cancel();
    this.h.onFailure(error ?? new Error(reason === "cancelled" ? "generation was cancelled" : "generation failed"), this.usage());
  }
}
