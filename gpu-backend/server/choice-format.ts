import type { ChatCompletion, ChatCompletionChunk } from "../../src/openai/chat.js";
import type { Completion } from "../../src/openai/completions.js";
import type { Usage } from "../../src/openai/usage.js";
import { byteLevelBytes } from "../engine/byte-level.js";
import type { TextCodec } from "../engine/tokenizer.js";
import type { Sampled } from "../sampling/sampler.js";
import { Detokenizer } from "../text/detokenizer.js";

type ChatLogprob = NonNullable<NonNullable<ChatCompletion["choices"][number]["logprobs"]>["content"]>[number];
interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * OpenAI response objects for both endpoints, built from per-choice deltas. One instance per request: it
 * accumulates text (for non-streaming answers) and text offsets (for completions logprobs). A non-streaming
 * answer's logprobs are kept as JSON text as they come: a token's entry with 20 alternatives is ~1.6 KB of
 * JSON but ~15 KB as objects (128 choices × 1,000 such tokens held 2.4 GB). A stream keeps none.
 */
export class ChoiceFormatter {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  private readonly text: string[] = [];
  /** Non-streaming only, per choice: chat `logprobs.content` entries, as JSON. */
  private readonly chatLogprobs: string[][] = [];
  /** Non-streaming only, per choice: completions logprobs, `top_logprobs` entries as JSON. */
  private readonly cmplLogprobs: { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: string[]; text_offset: number[] }[] = [];
  /** Streaming only, per choice: the echoed prompt's logprobs, sent with the echo chunk. */
  private readonly promptLogprobs: CompletionLogprobs[] = [];
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
    private readonly streaming: boolean,
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
      const entry: ChatLogprob = {
        token: this.tokenText(s.token),
        logprob: s.logprob,
        bytes: this.tokenBytes(s.token),
        top_logprobs: s.top.map((t) => ({ token: this.tokenText(t.token), logprob: t.logprob, bytes: this.tokenBytes(t.token) })),
      };
      if (!this.streaming) this.chatLogprobs[choice]!.push(JSON.stringify(entry));
      return { content: [entry] };
    }
    const one: CompletionLogprobs = { tokens: [this.tokenText(s.token)], token_logprobs: [s.logprob], top_logprobs: [this.topLogprobs(s)], text_offset: [offset] };
    if (!this.streaming) this.keepCompletionLogprobs(choice, one);
    return one;
  }

  /** Appends entries (one token's, or a whole echoed prompt's: a loop, as spreading 100k+ would overflow). */
  private keepCompletionLogprobs(choice: number, add: CompletionLogprobs): void {
    const lp = this.cmplLogprobs[choice]!;
    for (let k = 0; k < add.tokens.length; k++) {
      lp.tokens.push(add.tokens[k]!);
      lp.token_logprobs.push(add.token_logprobs[k] ?? null);
      lp.top_logprobs.push(JSON.stringify(add.top_logprobs[k]));
      lp.text_offset.push(add.text_offset[k]!);
    }
  }

  /**
   * Echoed prompt tokens `prompt[from…]` with their scores (`scores[k]` is prompt token k + 1): they open the
   * choice's completions logprobs, as OpenAI's `echo` does. A token with nothing before it gets null.
   */
  recordPrompt(choice: number, prompt: number[], from: number, scores: Sampled[]): void {
    const echo: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    const detok = new Detokenizer((ids) => this.codec.decode(ids));
    let offset = 0;
    for (let q = from; q < prompt.length; q++) {
      const s = q > 0 ? scores[q - 1] : undefined;
      echo.tokens.push(this.tokenText(prompt[q]!));
      echo.token_logprobs.push(s ? s.logprob : null);
      echo.top_logprobs.push(s ? this.topLogprobs(s) : null);
      echo.text_offset.push(offset);
      offset += detok.push(prompt[q]!).length;
    }
    if (this.streaming) this.promptLogprobs[choice] = echo;
    else this.keepCompletionLogprobs(choice, echo);
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

  /**
   * The whole answer of a non-streaming request (a `chat.completion` or `text_completion`), as JSON text in
   * pieces: with logprobs it can outgrow the longest string JavaScript allows.
   */
  full(usage: Usage, withLogprobs: boolean): string[] {
    const head = JSON.stringify({ ...this.header(), object: this.kind === "chat" ? "chat.completion" : "text_completion" });
    const parts = [head.slice(0, -1), ',"choices":['];
    /** A JSON array whose elements are already JSON, one piece each. */
    const array = (items: string[]) => {
      parts.push("[");
      items.forEach((x, k) => parts.push(k ? `,${x}` : x));
      parts.push("]");
    };
    this.text.forEach((t, i) => {
      if (i > 0) parts.push(",");
      if (this.kind === "chat") {
        parts.push(`{"index":${i},"message":${JSON.stringify({ role: "assistant", content: t, refusal: null })},"logprobs":`);
        if (withLogprobs) {
          parts.push('{"content":');
          array(this.chatLogprobs[i]!);
          parts.push("}");
        } else parts.push("null");
      } else {
        parts.push(`{"index":${i},"text":${JSON.stringify(t)},"logprobs":`);
        if (withLogprobs) {
          const lp = this.cmplLogprobs[i]!;
          parts.push(`{"tokens":${JSON.stringify(lp.tokens)},"token_logprobs":${JSON.stringify(lp.token_logprobs)},"top_logprobs":`);
          array(lp.top_logprobs);
          parts.push(`,"text_offset":${JSON.stringify(lp.text_offset)}}`);
        } else parts.push("null");
      }
      parts.push(`,"finish_reason":${JSON.stringify(this.finish[i] ?? "stop")}}`);
    });
    parts.push(`],"usage":${JSON.stringify(usage)}}`);
    return parts;
  }

  get choiceCount(): number {
    return this.choices;
  }

  echoFor(choice: number): string | null {
    return this.echo ? this.echo[Math.floor(choice / this.n)]! : null;
  }
}
