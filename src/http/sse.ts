import { createParser, type EventSourceMessage } from "eventsource-parser";
import { readWithin } from "./read-within.js";

export const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
} as const;

export const SSE_DONE = "data: [DONE]\n\n";

/** A comment line: SSE clients ignore it; it keeps an idle stream's connections alive and shows the sender is. */
export const SSE_KEEPALIVE = ": keepalive\n\n";

/** One SSE event carrying `data` (a JSON string, or `[DONE]`). */
export function sseEvent(data: string, event?: string): string {
  const lines = data.split("\n").map((l) => `data: ${l}`).join("\n");
  return event ? `event: ${event}\n${lines}\n\n` : `${lines}\n\n`;
}

export const sseJson = (value: unknown): string => sseEvent(JSON.stringify(value));

/** Upstream events larger than this are a broken or hostile upstream, not a model answer. */
const MAX_EVENT_CHARS = 8 * 1024 * 1024;

export interface SseRewriter {
  /** Return the text to emit for this event (possibly rewritten), or null to drop it. */
  onEvent(message: EventSourceMessage): string | null;
  /** The source ended cleanly; may emit trailing text. */
  onEnd(): string | null;
  /** The source failed (reset, malformed beyond repair); may emit a final error event. */
  onError(error: unknown): string | null;
  /** The consumer went away; nothing more will be emitted. */
  onCancel(reason: unknown): void;
}

/**
 * Re-emits an SSE byte stream event by event as the rewriter decides. Pull-based: one upstream read per
 * downstream demand, so nothing is buffered beyond the event in hand and backpressure reaches the source.
 * A failing source ends the stream with whatever the rewriter emits instead of a torn connection. The
 * consumer going away — a cancelled stream, or `signal` (the client's request signal) aborting, which is how
 * workerd reports a disconnect — cancels the source and tells the rewriter. Comments (keepalives) pass on as
 * they are; a source silent for `idleMs` fails as one that broke.
 */
export function rewriteSse(source: ReadableStream<Uint8Array>, rewriter: SseRewriter, signal?: AbortSignal, idleMs?: number): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const reader = source.getReader();
  const pending: string[] = [];
  let parseError: Error | null = null;
  const parser = createParser({
    onEvent: (m) => {
      const s = rewriter.onEvent(m);
      if (s) pending.push(s);
    },
    onComment: (comment) => pending.push(`: ${comment}\n\n`),
    onError: (e) => {
      if (e.type === "max-buffer-size-exceeded") parseError = e;
    },
    maxBufferSize: MAX_EVENT_CHARS,
  });
  let gone = false;
  const consumerGone = (reason: unknown) => {
    if (gone) return Promise.resolve();
    gone = true;
    rewriter.onCancel(reason);
    return reader.cancel(reason).catch(() => {});
  };
  signal?.addEventListener("abort", () => void consumerGone(signal.reason), { once: true });
  const finish = (controller: ReadableStreamDefaultController<Uint8Array>, tail: string | null) => {
    for (const s of pending.splice(0)) controller.enqueue(encoder.encode(s));
    if (tail) controller.enqueue(encoder.encode(tail));
    controller.close();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (pending.length === 0) {
          const { done, value } = await readWithin(reader, idleMs);
          if (done) {
            parser.feed(decoder.decode());
            parser.reset({ consume: true });
            return finish(controller, rewriter.onEnd());
          }
          parser.feed(decoder.decode(value, { stream: true }));
          if (parseError) throw parseError;
        }
        for (const s of pending.splice(0)) controller.enqueue(encoder.encode(s));
      } catch (e) {
        reader.cancel(e).catch(() => {});
        finish(controller, rewriter.onError(e));
      }
    },
    cancel(reason) {
      return consumerGone(reason);
    },
  });
}
