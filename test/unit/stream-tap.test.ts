import { describe, expect, it, vi } from "vitest";
import { rewriteSse } from "../../src/http/sse.js";
import { openAiStreamTap, type StreamOutcome } from "../../src/openai/stream-tap.js";

const enc = new TextEncoder();

/** A source that yields the given pieces (split anywhere, even mid-event), then ends or fails. */
function source(pieces: string[], fail?: Error): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(ctl) {
      if (i < pieces.length) ctl.enqueue(enc.encode(pieces[i++]!));
      else if (fail) ctl.error(fail);
      else ctl.close();
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<string> {
  return new Response(stream).text();
}

const chunk = (content: string, usage: unknown = null) =>
  JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "up", choices: [{ index: 0, delta: { content }, finish_reason: null }], usage });
const usageChunk = JSON.stringify({
  id: "c",
  object: "chat.completion.chunk",
  created: 1,
  model: "up",
  choices: [],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
});

function tap(clientWantsUsage: boolean, publicModel?: string) {
  let outcome: StreamOutcome | undefined;
  const rewriter = openAiStreamTap({ clientWantsUsage, ...(publicModel ? { publicModel } : {}), onFinish: (o) => (outcome = o) });
  return { rewriter, outcome: () => outcome };
}

describe("openAiStreamTap over rewriteSse", () => {
  const whole = `data: ${chunk("a")}\n\ndata: ${chunk("b")}\n\ndata: ${usageChunk}\n\ndata: [DONE]\n\n`;

  it("captures usage and hides the usage chunk from clients that did not ask", async () => {
    const t = tap(false);
    const out = await collect(rewriteSse(source([whole.slice(0, 17), whole.slice(17, 80), whole.slice(80)]), t.rewriter));
    const events = out.trim().split("\n\n");
    expect(events).toHaveLength(3);
    expect(events[2]).toBe("data: [DONE]");
    expect(out).not.toContain('"usage"');
    expect(t.outcome()).toEqual({ status: "completed", usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }, chunks: 2 });
  });

  it("passes the usage chunk to clients that asked, byte for byte", async () => {
    const t = tap(true);
    const out = await collect(rewriteSse(source([whole]), t.rewriter));
    expect(out).toBe(whole);
  });

  it("rewrites the model name when asked", async () => {
    const t = tap(true, "public");
    const out = await collect(rewriteSse(source([whole]), t.rewriter));
    expect(out).not.toContain('"up"');
    expect(out.match(/"model":"public"/g)).toHaveLength(3);
  });

  it("ends a stream that dies mid-way with an error event", async () => {
    const t = tap(true);
    const out = await collect(rewriteSse(source([`data: ${chunk("a")}\n\n`], new Error("reset")), t.rewriter));
    const last = JSON.parse(out.trim().split("\n\n").at(-1)!.slice(6));
    expect(last.error.code).toBe("upstream_stream_error");
    expect(t.outcome()?.status).toBe("failed");
    expect(t.outcome()?.chunks).toBe(1);
  });

  it("treats a stream without [DONE] as failed", async () => {
    const t = tap(true);
    const out = await collect(rewriteSse(source([`data: ${chunk("a")}\n\n`]), t.rewriter));
    expect(out).toContain("ended the stream before it was complete");
    expect(t.outcome()?.status).toBe("failed");
  });

  it("reports a cancelled stream and cancels the source", async () => {
    let cancelled = false;
    const src = new ReadableStream<Uint8Array>({
      pull(ctl) {
        ctl.enqueue(enc.encode(`data: ${chunk("x")}\n\n`));
      },
      cancel() {
        cancelled = true;
      },
    });
    const t = tap(false);
    const reader = rewriteSse(src, t.rewriter).getReader();
    await reader.read();
    await reader.cancel("client left");
    expect(cancelled).toBe(true);
    expect(t.outcome()?.status).toBe("cancelled");
  });
  it("passes keepalive comments on, and ends a source silent for idleMs with an error event", async () => {
    vi.useFakeTimers();
    try {
      let cancelled = false;
      const src = new ReadableStream<Uint8Array>({
        start(ctl) {
          ctl.enqueue(enc.encode(`data: ${chunk("a")}\n\n: keepalive\n\n`));
        },
        cancel() {
          cancelled = true;
        },
      });
      const t = tap(false);
      const text = collect(rewriteSse(src, t.rewriter, undefined, 1000));
      await vi.advanceTimersByTimeAsync(1000);
      const events = (await text).split("\n\n");
      expect(JSON.parse(events[0]!.slice(6)).choices[0].delta.content).toBe("a");
      expect(events[1]).toBe(": keepalive");
      expect(JSON.parse(events[2]!.slice(6)).error.message).toContain("sent nothing for 1000 ms");
      expect(cancelled).toBe(true);
      expect(t.outcome()?.status).toBe("failed");
    } finally {
      vi.useRealTimers();
    }
  });
});
