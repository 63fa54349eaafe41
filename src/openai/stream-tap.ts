import type { SseRewriter } from "../http/sse.js";
import { SSE_DONE, sseEvent, sseJson } from "../http/sse.js";
import { errorBody } from "./errors.js";
import { UsageSchema, type Usage } from "./usage.js";

export type StreamStatus = "completed" | "failed" | "cancelled";

export interface StreamOutcome {
  status: StreamStatus;
  usage: Usage | null;
  /** Chunks that carried generated text: what a stream that fails mid-way delivered (≈ tokens, one per chunk). */
  chunks: number;
  error?: string;
}

export interface StreamTapOptions {
  /** The client asked for `stream_options.include_usage`; otherwise the usage chunk the edge requested is dropped. */
  clientWantsUsage: boolean;
  /** Rewrite `model` in every chunk to this public id (when the upstream knows the model by another name). */
  publicModel?: string;
  /** Sees every parsed chunk as it passes (before rewriting), e.g. to assemble a cache entry. */
  onChunk?: (chunk: Record<string, unknown>) => void;
  onFinish(outcome: StreamOutcome): void;
}

/**
 * Watches an OpenAI-style completion stream on its way to the client: captures usage (the edge always asks the
 * upstream for it), hides the usage chunk from clients that did not ask, and turns an upstream that dies
 * mid-stream into a final OpenAI-style error event instead of a torn connection.
 */
export function openAiStreamTap(opts: StreamTapOptions): SseRewriter {
  let usage: Usage | null = null;
  let chunks = 0;
  let sawDone = false;
  let finished = false;
  const finish = (status: StreamStatus, error?: string) => {
    if (finished) return;
    finished = true;
    opts.onFinish({ status, usage, chunks, ...(error ? { error } : {}) });
  };
  const failure = (message: string) => {
    finish("failed", message);
    return sseJson(errorBody(message, "server_error", null, "upstream_stream_error"));
  };

  return {
    onEvent(m) {
      if (m.data.trim() === "[DONE]") {
        sawDone = true;
        return SSE_DONE;
      }
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(m.data) as Record<string, unknown>;
      } catch {
        return sseEvent(m.data, m.event);
      }
      if (obj === null || typeof obj !== "object") return sseEvent(m.data, m.event);
      if ("error" in obj) {
        finish("failed", "upstream sent an error event");
        return sseEvent(m.data, m.event);
      }
      opts.onChunk?.(obj);
      let changed = false;
      if (obj.usage != null) {
        const parsed = UsageSchema.safeParse(obj.usage);
        if (parsed.success) usage = parsed.data;
        const usageOnly = Array.isArray(obj.choices) && obj.choices.length === 0;
        if (usageOnly && !opts.clientWantsUsage) return null;
      } else if (carriesText(obj)) {
        chunks++;
      }
      if (!opts.clientWantsUsage && "usage" in obj) {
        delete obj.usage;
        changed = true;
      }
      if (opts.publicModel && obj.model !== opts.publicModel) {
        obj.model = opts.publicModel;
        changed = true;
      }
      return changed ? sseJson(obj) : sseEvent(m.data, m.event);
    },
    onEnd() {
      if (sawDone || finished) {
        finish("completed");
        return null;
      }
      return failure("The upstream ended the stream before it was complete.");
    },
    onError(e) {
      return failure(`The upstream connection failed mid-stream (${e instanceof Error ? e.message : String(e)}).`);
    },
    onCancel() {
      finish("cancelled");
    },
  };
}

/** Whether a chat or text-completion chunk delivers generated text. */
function carriesText(obj: Record<string, unknown>): boolean {
  const choices = obj.choices as { delta?: { content?: unknown }; text?: unknown }[] | undefined;
  return Array.isArray(choices) && choices.some((c) => (typeof c.delta?.content === "string" && c.delta.content !== "") || (typeof c.text === "string" && c.text !== ""));
}
