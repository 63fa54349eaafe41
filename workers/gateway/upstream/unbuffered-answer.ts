import { concatBytes } from "../../../src/http/bytes.js";
import { JsonMemberStream } from "../../../src/http/json-members.js";
import { readWithin } from "../../../src/http/read-within.js";
import type { StreamOutcome } from "../../../src/openai/stream-tap.js";
import { UsageSchema } from "../../../src/openai/usage.js";

export type BodyHead =
  | { whole: Uint8Array }
  | { head: Uint8Array[]; reader: ReadableStreamDefaultReader<Uint8Array> };

/**
 * Reads a body up to `limit` bytes: the whole of it when it fits, else what was read and the reader to go on.
 * A body silent for `idleMs` is given up (see readWithin). `signal` (the client's) aborting cancels the body,
 * so the backend stops generating for nobody, and this throws.
 */
export async function readUpTo(body: ReadableStream<Uint8Array> | null, limit: number, idleMs: number, signal?: AbortSignal): Promise<BodyHead> {
  if (!body) return { whole: new Uint8Array(0) };
  const reader = body.getReader();
  const head: Uint8Array[] = [];
  let bytes = 0;
  const onAbort = () => void reader.cancel(signal!.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const next = await readWithin(reader, idleMs);
      if (signal?.aborted) throw new Error("the client went away");
      if (next.done) break;
      head.push(next.value);
      bytes += next.value.length;
      if (bytes > limit) return { head, reader };
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  return { whole: concatBytes(head) };
}

/**
 * A non-streaming answer too large to hold (logprobs of thousands of tokens can reach tens of MB, and a Worker
 * has 128 MB): passed to the client as it arrives, with `usage` read and `model` relabelled on the way. Pull-
 * based, so backpressure reaches the backend. `onFinish` gets the outcome once: completed (with the upstream's
 * usage when it sent one), failed (the backend broke off, was silent for `idleMs`, or sent a truncated object:
 * the client's body ends in an error too), or cancelled (the client left, via a cancelled body or `signal`).
 * Null, with the body cancelled, when what was read is not the start of a JSON object.
 */
export function passThroughAnswer(
  head: Uint8Array[],
  reader: ReadableStreamDefaultReader<Uint8Array>,
  opts: { publicModel?: string; signal?: AbortSignal; idleMs: number; onFinish(outcome: StreamOutcome): void },
): ReadableStream<Uint8Array> | null {
  const scan = new JsonMemberStream({ capture: ["usage"], ...(opts.publicModel ? { replace: { model: JSON.stringify(opts.publicModel) } } : {}) });
  const queued = head.flatMap((chunk) => scan.feed(chunk));
  if (scan.invalid) {
    void reader.cancel().catch(() => {});
    return null;
  }
  let finished = false;
  const onAbort = () => void gone(opts.signal!.reason);
  const finish = (status: StreamOutcome["status"], error?: string) => {
    if (finished) return;
    finished = true;
    opts.signal?.removeEventListener("abort", onAbort);
    const usage = status === "completed" ? parseUsage(scan.end().captured.get("usage")) : null;
    opts.onFinish({ status, usage, chunks: 1, ...(error ? { error } : {}) });
  };
  const gone = (reason: unknown) => {
    finish("cancelled");
    return reader.cancel(reason).catch(() => {});
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (queued.length > 0) {
        for (const part of queued.splice(0)) controller.enqueue(part);
        return;
      }
      try {
        for (;;) {
          const { done, value } = await readWithin(reader, opts.idleMs);
          if (done) break;
          const out = scan.feed(value);
          if (out.length === 0) continue;
          for (const part of out) controller.enqueue(part);
          return;
        }
      } catch (e) {
        finish("failed", `the backend broke off its answer: ${String(e)}`);
        reader.cancel(e).catch(() => {});
        controller.error(new Error("the backend broke off its answer"));
        return;
      }
      if (scan.end().complete) {
        finish("completed");
        controller.close();
      } else {
        const message = "the backend's answer ended before its JSON object did";
        finish("failed", message);
        controller.error(new Error(message));
      }
    },
    cancel(reason) {
      return gone(reason);
    },
  });
}

function parseUsage(text: string | undefined): StreamOutcome["usage"] {
  if (text === undefined) return null;
  try {
    const usage = UsageSchema.safeParse(JSON.parse(text));
    return usage.success ? usage.data : null;
  } catch {
    return null;
  }
}
