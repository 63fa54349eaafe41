import { SSE_DONE, sseJson } from "../http/sse.js";
import type { Usage } from "../openai/usage.js";

/**
 * A cached answer: the whole response as a non-streaming client would have received it, plus the text deltas a
 * streaming client saw (so a streamed hit replays in the same pieces).
 */
export interface CachedAnswer {
  kind: "chat" | "completion";
  response: {
    id: string;
    object: string;
    created: number;
    model: string;
    system_fingerprint?: string | null;
    choices: { index: number; message?: { role: string; content: string | null }; text?: string; finish_reason: string | null; logprobs?: unknown }[];
    usage?: Usage | null;
  };
  deltas: Record<number, string[]>;
}

/** Builds the cache entry for a stream from its chunks as they pass. */
export class StreamAssembler {
  private id = "";
  private created = 0;
  private model = "";
  private fingerprint: string | null = null;
  private usage: Usage | null = null;
  private readonly texts = new Map<number, string[]>();
  private readonly finish = new Map<number, string | null>();

  constructor(private readonly kind: "chat" | "completion") {}

  add(chunk: Record<string, unknown>): void {
    this.id ||= String(chunk.id ?? "");
    this.created ||= Number(chunk.created ?? 0);
    this.model ||= String(chunk.model ?? "");
    this.fingerprint ??= (chunk.system_fingerprint as string | undefined) ?? null;
    if (chunk.usage) this.usage = chunk.usage as Usage;
    for (const c of (chunk.choices as { index: number; delta?: { content?: string | null }; text?: string; finish_reason: string | null }[] | undefined) ?? []) {
      const piece = this.kind === "chat" ? c.delta?.content : c.text;
      let pieces = this.texts.get(c.index);
      if (!pieces) this.texts.set(c.index, (pieces = []));
      if (piece) pieces.push(piece);
      if (c.finish_reason) this.finish.set(c.index, c.finish_reason);
    }
  }

  answer(): CachedAnswer | null {
    if (!this.usage || this.texts.size === 0) return null; // incomplete streams are never cached
    const choices = [...this.texts.keys()].sort((a, b) => a - b).map((index) => {
      const text = this.texts.get(index)!.join("");
      const finish_reason = this.finish.get(index) ?? "stop";
      return this.kind === "chat"
        ? { index, message: { role: "assistant", content: text }, logprobs: null, finish_reason }
        : { index, text, logprobs: null, finish_reason };
    });
    return {
      kind: this.kind,
      response: {
        id: this.id,
        object: this.kind === "chat" ? "chat.completion" : "text_completion",
        created: this.created,
        model: this.model,
        system_fingerprint: this.fingerprint,
        choices,
        usage: this.usage,
      },
      deltas: Object.fromEntries(this.texts),
    };
  }
}

/** The usage a cache hit reports: the original counts, every prompt token served from cache. */
export function hitUsage(u: Usage): Usage {
  return { ...u, prompt_tokens_details: { ...u.prompt_tokens_details, cached_tokens: u.prompt_tokens }, prompt_cache_hit_tokens: u.prompt_tokens, prompt_cache_miss_tokens: 0 };
}

/** A cached answer replayed as an SSE stream with the chunk shapes of the original endpoint. */
export function replayAsStream(a: CachedAnswer, id: string, includeUsage: boolean): string {
  const chat = a.kind === "chat";
  const base = { id, object: chat ? "chat.completion.chunk" : "text_completion", created: Math.floor(Date.now() / 1000), model: a.response.model, system_fingerprint: a.response.system_fingerprint ?? null };
  const extra = includeUsage ? { usage: null } : {};
  let out = "";
  for (const c of a.response.choices) {
    const pieces = a.deltas[c.index]?.length ? a.deltas[c.index]! : [chat ? (c.message?.content ?? "") : (c.text ?? "")];
    if (chat) out += sseJson({ ...base, choices: [{ index: c.index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }], ...extra });
    for (const p of pieces) {
      out += sseJson({ ...base, choices: [chat ? { index: c.index, delta: { content: p }, logprobs: null, finish_reason: null } : { index: c.index, text: p, logprobs: null, finish_reason: null }], ...extra });
    }
    out += sseJson({ ...base, choices: [chat ? { index: c.index, delta: {}, logprobs: null, finish_reason: c.finish_reason } : { index: c.index, text: "", logprobs: null, finish_reason: c.finish_reason }], ...extra });
  }
  if (includeUsage && a.response.usage) out += sseJson({ ...base, choices: [], usage: hitUsage(a.response.usage) });
  return out + SSE_DONE;
}

/** A cached answer as a fresh non-streaming response. */
export function replayAsJson(a: CachedAnswer, id: string): CachedAnswer["response"] {
  return { ...a.response, id, created: Math.floor(Date.now() / 1000), ...(a.response.usage ? { usage: hitUsage(a.response.usage) } : {}) };
}
