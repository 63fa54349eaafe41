import type { ChatCompletion, ChatCompletionChunk } from "../../src/openai/chat.js";
import type { Completion } from "../../src/openai/completions.js";
import type { Usage } from "../../src/openai/usage.js";
import { byteLevelBytes } from "../engine/byte-level.js";
import type { TextCodec } from "../engine/tokenizer.js";
import type { Sampled } from "../sampling/sampler.js";
import { Detokenizer } from "../text/detokenizer.js";

/**
 * OpenAI response objects for both endpoints, built from per-choice deltas. One instance per request:
 * it accumulates text (for non-streaming answers) and text offsets (for completions logprobs).
 */
export class ChoiceFormatter {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  private readonly text: string[] = [];
  private readonly chatLogprobs: NonNullable<NonNullable<ChatCompletion["choices"][number]["logprobs"]>["content"]>[] = [];
  private readonly cmplLogprobs: { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[]; text_offset: number[] }[] = [];
  /** Per choice: the echoed prompt's logprobs object, sent with the echo chunk when streaming. */
  private readonly promptLogprobs: unknown[] = [];
  private readonly finish: ("stop" | "length" | null)[] = [];
  readonly systemFingerprint: string;

  constructor(
    readonly kind: "chat" | "completion",
    readonly model: string,
    private readonly codec: TextCodec,
    private readonly choices: number,
    private readonly echo: string[] | null,
    private readonly n: number,
    backend: string,
  ) {
    this.id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${crypto.randomUUID().replace(/-/g, "")}`;
    this.systemFingerprint = `fp_moe_edge_${backend}`;
    for (let i = 0; i < choices; i++) {
      this.text.push(echo ? echo[Math.floor(i / n)]! : "");
      this.chatLogprobs.push([]);
      this.cmplLogprobs.push({ tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] });
      this.finish.push(null);
    }
  }

  private tokenText(id: number): string {
    return this.codec.decode([id], { skipSpecial: false });
  }

  private tokenBytes(id: number): number[] {
    const raw = this.codec.tokenString(id);
    return (raw !== undefined ? byteLevelBytes(raw) : null) ?? [...new TextEncoder().encode(this.tokenText(id))];
  }

  /** Completions' `top_logprobs` entry for a token: alternative text → logprob. */
  private topLogprobs(s: Sampled): Record<string, number> {
    return Object.fromEntries(s.top.map((t) => [this.tokenText(t.token), t.logprob]));
  }

  /** Records a delta; returns the logprobs object for a streamed chunk (or null when not requested). */
  record(choice: number, delta: string, s: Sampled, withLogprobs: boolean): unknown {
    const offset = this.text[choice]!.length;
    this.text[choice] += delta;
    if (!withLogprobs) return null;
    if (this.kind === "chat") {
      const entry = {
        token: this.tokenText(s.token),
        logprob: s.logprob,
        bytes: this.tokenBytes(s.token),
        top_logprobs: s.top.map((t) => ({ token: this.tokenText(t.token), logprob: t.logprob, bytes: this.tokenBytes(t.token) })),
      };
      this.chatLogprobs[choice]!.push(entry);
      return { content: [entry] };
    }
    const lp = this.cmplLogprobs[choice]!;
    const top = this.topLogprobs(s);
    lp.tokens.push(this.tokenText(s.token));
    lp.token_logprobs.push(s.logprob);
    lp.top_logprobs.push(top);
    lp.text_offset.push(offset);
    return { tokens: [lp.tokens.at(-1)], token_logprobs: [s.logprob], top_logprobs: [top], text_offset: [offset] };
  }

  /**
   * Echoed prompt tokens `prompt[from…]` with their scores (`scores[k]` is prompt token k + 1): they open the
   * choice's completions logprobs, as OpenAI's `echo` does. A token with nothing before it gets null.
   */
  recordPrompt(choice: number, prompt: number[], from: number, scores: Sampled[]): void {
    const lp = this.cmplLogprobs[choice]!;
    const detok = new Detokenizer((ids) => this.codec.decode(ids));
    let offset = 0;
    for (let q = from; q < prompt.length; q++) {
      const s = q > 0 ? scores[q - 1] : undefined;
      lp.tokens.push(this.tokenText(prompt[q]!));
      lp.token_logprobs.push(s ? s.logprob : null);
      lp.top_logprobs.push(s ? this.topLogprobs(s) : null);
      lp.text_offset.push(offset);
      offset += detok.push(prompt[q]!).length;
    }
    this.promptLogprobs[choice] = { tokens: [...lp.tokens], token_logprobs: [...lp.token_logprobs], top_logprobs: [...lp.top_logprobs], text_offset: [...lp.text_offset] };
  }

  /** The logprobs of a choice's echo chunk, or null. */
  echoLogprobs(choice: number): unknown {
    return this.promptLogprobs[choice] ?? null;
  }

  end(choice: number, reason: "stop" | "length"): void {
    this.finish[choice] = reason;
  }

  /** The fields every object of this response starts with. */
  private header() {
    return { id: this.id, created: this.created, model: this.model, system_fingerprint: this.systemFingerprint };
  }

  /** Streamed chunk for one choice: content delta, role on the first chunk, finish reason on the last. */
  chunk(choice: number, delta: { role?: "assistant"; content?: string } | string, finish: "stop" | "length" | null, logprobs: unknown, includeUsageField: boolean): ChatCompletionChunk | Completion {
    const usage = includeUsageField ? { usage: null } : {};
    const lp = (logprobs ?? null) as never;
    return this.kind === "chat"
      ? { ...this.header(), object: "chat.completion.chunk", choices: [{ index: choice, delta: delta as { content?: string }, logprobs: lp, finish_reason: finish }], ...usage }
      : { ...this.header(), object: "text_completion", choices: [{ index: choice, text: delta as string, logprobs: lp, finish_reason: finish }], ...usage };
  }

  usageChunk(usage: Usage): ChatCompletionChunk | Completion {
    return { ...this.header(), object: this.kind === "chat" ? "chat.completion.chunk" : "text_completion", choices: [], usage } as ChatCompletionChunk | Completion;
  }

  /** The whole answer, for non-streaming requests. */
  full(usage: Usage, withLogprobs: boolean): ChatCompletion | Completion {
    if (this.kind === "chat") {
      return {
        ...this.header(),
        object: "chat.completion",
        choices: this.text.map((t, i) => ({
          index: i,
          message: { role: "assistant", content: t, refusal: null },
          logprobs: withLogprobs ? { content: this.chatLogprobs[i]! } : null,
          finish_reason: this.finish[i] ?? "stop",
        })),
        usage,
      };
    }
    return {
      ...this.header(),
      object: "text_completion",
      choices: this.text.map((t, i) => ({ index: i, text: t, logprobs: withLogprobs ? this.cmplLogprobs[i]! : null, finish_reason: this.finish[i] ?? "stop" })),
      usage,
    };
  }

  get choiceCount(): number {
    return this.choices;
  }

  echoFor(choice: number): string | null {
    return this.echo ? this.echo[Math.floor(choice / this.n)]! : null;
  }
}
