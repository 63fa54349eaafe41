import { getEventListeners } from "node:events";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DeepSeekModel } from "../../gpu-backend/engine/model.js";
import { TextCodec } from "../../gpu-backend/engine/tokenizer.js";
import { Scheduler } from "../../gpu-backend/scheduler/scheduler.js";
import { createPodApp } from "../../gpu-backend/server/app.js";
import { PodMetrics } from "../../gpu-backend/server/metrics.js";
import { eventually } from "../support/eventually.js";

// The pod's app in this process, so what it is handed and what it queues can be inspected directly.
const MODEL = "tiny";
let model: DeepSeekModel;
let codec: TextCodec;
const schedulers: Scheduler[] = [];

beforeAll(async () => {
  const dir = inject("tinyModelDir");
  model = await DeepSeekModel.load(dir, { threads: 1 });
  codec = TextCodec.load(dir, model.config.eosTokenIds);
});
afterAll(async () => {
  for (const s of schedulers) await s.stop();
  await model?.close();
});

/** An app over its own scheduler; `run: false` leaves the scheduler stopped, so every request stays queued. */
function pod(opts: { maxWaiting: number; run: boolean; maxUnreadBytes?: number; keepaliveMs?: number }) {
  const scheduler = new Scheduler(model, { maxBatchTokens: 256, maxRunning: 8, numBlocks: 64, blockSize: 16 });
  schedulers.push(scheduler);
  if (opts.run) scheduler.start();
  const app = createPodApp({
    model,
    codec,
    encode: async (text, o) => codec.encode(text, o),
    encodeChat: async (turns) => codec.encodeChat(turns),
    scheduler,
    modelId: MODEL,
    podId: "test",
    metrics: new PodMetrics(),
    state: { draining: false },
    maxBodyBytes: 1 << 20,
    maxWaiting: opts.maxWaiting,
    edgeSecrets: [],
    ...(opts.maxUnreadBytes ? { maxUnreadBytes: opts.maxUnreadBytes } : {}),
    ...(opts.keepaliveMs ? { keepaliveMs: opts.keepaliveMs } : {}),
  });
  return { scheduler, app };
}

/** `pod_generations_total` from the app's /metrics, by outcome. */
async function generations(app: ReturnType<typeof pod>["app"]): Promise<Record<string, number>> {
  const text = await (await app.fetch(new Request("http://pod/metrics"))).text();
  return Object.fromEntries([...text.matchAll(/^pod_generations_total\{outcome="(\w+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

const request = (body: Record<string, unknown>, opts: { signal?: AbortSignal; tenant?: string } = {}) =>
  new Request("http://pod/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json", "x-tenant-id": opts.tenant ?? "t" },
    body: JSON.stringify({ model: MODEL, prompt: "Hello there", temperature: 0, ...body }),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });

describe("a request's abort signal", () => {
  // A listener left on a finished request's signal kept every request, its response and its generation alive
  // for the process's life (undici holds a Request's signal from a FinalizationRegistry until the Request is
  // collected, and the listener reached the Request back).
  const abortListeners = (r: Request) => getEventListeners(r.signal, "abort").length;
  let p: ReturnType<typeof pod>;
  beforeAll(() => {
    p = pod({ maxWaiting: 64, run: true });
  });

  it("is released when a non-streaming request answers", async () => {
    const req = request({ max_tokens: 4 });
    const res = await p.app.fetch(req);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { choices: unknown[] }).choices).toHaveLength(1);
    expect(abortListeners(req)).toBe(0);
  });

  it("is watched while a stream runs and released when it ends", async () => {
    const req = request({ max_tokens: 6, stream: true });
    const res = await p.app.fetch(req);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    expect(abortListeners(req)).toBe(1);
    let text = new TextDecoder().decode(first.value);
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value);
    expect(text).toContain("data: [DONE]");
    expect(abortListeners(req)).toBe(0);
  });

  it("cancels the generation when the client goes away, and frees its blocks", async () => {
    const ac = new AbortController();
    const req = request({ max_tokens: 200, stream: true, ignore_eos: true }, { signal: ac.signal });
    const res = await p.app.fetch(req);
    await res.body!.getReader().read();
    expect(p.scheduler.stats().running).toBe(1);
    ac.abort();
    const after = await eventually(5_000, async () => p.scheduler.stats(), (s) => s.running === 0);
    expect(after.running).toBe(0);
    expect(after.blocks.used).toBe(0);
    expect(abortListeners(req)).toBe(0);
    // The answers above completed; this one was cancelled, not failed.
    expect(await generations(p.app)).toEqual({ completed: 2, cancelled: 1 });
  });
});

describe("a non-streaming answer", () => {
  it("sends its head at once and a space per keepalive period while it waits; a failure after the head is an OpenAI error object", async () => {
    const p = pod({ maxWaiting: 64, run: false, keepaliveMs: 20 });
    const res = await p.app.fetch(request({ max_tokens: 4 }));
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    // Queued behind a stopped scheduler: nothing is generated, yet the head and then spaces come.
    for (let k = 0; k < 3; k++) expect(decoder.decode((await reader.read()).value)).toBe(" ");
    const forward = model.forward;
    model.forward = () => Promise.reject(new Error("the device fell off the bus"));
    try {
      p.scheduler.start();
      let text = "";
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
      expect(JSON.parse(text)).toEqual({ error: { message: "Generation failed: the device fell off the bus", type: "server_error", param: null, code: "generation_failed" } });
      expect(await generations(p.app)).toEqual({ failed: 1 });
    } finally {
      model.forward = forward;
    }
  });
});

describe("a stream with nothing to send yet", () => {
  it("sends a keepalive comment per period until its tokens come", async () => {
    const p = pod({ maxWaiting: 64, run: false, keepaliveMs: 20 });
    const res = await p.app.fetch(request({ max_tokens: 3, stream: true }));
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    // Queued behind a stopped scheduler.
    for (let k = 0; k < 2; k++) expect(decoder.decode((await reader.read()).value)).toBe(": keepalive\n\n");
    p.scheduler.start();
    let text = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
    const events = text.split("\n\n").filter((e) => e.startsWith("data: "));
    expect(events.at(-1)).toBe("data: [DONE]");
    expect(events.slice(0, -1).map((e) => (JSON.parse(e.slice(6)) as { object: string }).object)).toEqual(Array(events.length - 1).fill("text_completion"));
  });
});

describe("a stream whose client stops reading", () => {
  it("is cancelled once more than the bound is left unread, and says why", async () => {
    const p = pod({ maxWaiting: 64, run: true, maxUnreadBytes: 4096 });
    // Nothing reads this body: its chunks pile up in the pod.
    const res = await p.app.fetch(request({ max_tokens: 400, stream: true, ignore_eos: true, logprobs: 5 }));
    const after = await eventually(10_000, async () => p.scheduler.stats(), (s) => s.running === 0);
    expect(after.running).toBe(0);
    expect(after.blocks.used).toBe(0);
    const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: {"));
    expect(events.at(-1)).toMatch(/left more than 4096 bytes of the stream unread/);
    expect(events.length).toBeLessThan(100);
  });
});

describe("the admission queue's bound", () => {
  it("refuses with 503 past it, lets a tenant with nothing queued in up to twice it, and takes requests again once it drains", async () => {
    const { scheduler, app } = pod({ maxWaiting: 4, run: false });
    const clients: AbortController[] = [];
    const send = async (tenant: string, body: Record<string, unknown> = {}) => {
      const ac = new AbortController();
      clients.push(ac);
      return app.fetch(request({ max_tokens: 4, stream: true, ...body }, { tenant, signal: ac.signal }));
    };
    for (let i = 0; i < 4; i++) expect((await send("flood")).status).toBe(200);
    expect(scheduler.waiting).toBe(4);

    const refused = await send("flood");
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await refused.json()).toEqual({ error: { message: expect.stringMatching(/queue is full/), type: "server_error", param: null, code: "pod_overloaded" } });
    expect(scheduler.waiting).toBe(4);

    // Another tenant's single request is not locked out by the flood…
    expect((await send("quiet")).status).toBe(200);
    expect(scheduler.waiting).toBe(5);
    // …but nobody passes twice the bound: 5 + 2 prompts × n 2 > 8.
    expect((await send("third", { prompt: ["a", "b"], n: 2 })).status).toBe(503);
    expect((await send("third")).status).toBe(200);
    expect(scheduler.waiting).toBe(6);

    for (const ac of clients) ac.abort();
    expect(scheduler.waiting).toBe(0);
    expect((await send("flood", { n: 4 })).status).toBe(200);
    expect(scheduler.waiting).toBe(4);
    clients.at(-1)!.abort();
    expect(scheduler.waiting).toBe(0);
  });
});

describe("a KV block handed to a new sequence", () => {
  // Attention reads a sequence's last block whole (rows past its length are masked), so whatever an earlier
  // owner left there must be gone: a NaN survives masking (0 × NaN) and would reach the new owner's logits.
  it("carries nothing of its earlier owner", async () => {
    const text = async (p: ReturnType<typeof pod>) =>
      ((await (await p.app.fetch(request({ prompt: "Once upon a time", max_tokens: 24 }))).json()) as { choices: { text: string }[] }).choices[0]!.text;
    const expected = await text(pod({ maxWaiting: 8, run: true }));
    const dirty = pod({ maxWaiting: 8, run: true });
    const { store } = dirty.scheduler;
    for (const rows of store.layers) rows.fill(NaN, 0, store.numBlocks * store.blockSize * store.width);
    expect(await text(dirty)).toBe(expected);
  });
});
