import { getEventListeners } from "node:events";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DeepSeekModel } from "../../gpu-backend/engine/model.js";
import { TextCodec } from "../../gpu-backend/engine/tokenizer.js";
import { Scheduler } from "../../gpu-backend/scheduler/scheduler.js";
import { createPodApp } from "../../gpu-backend/server/app.js";
import { PodMetrics } from "../../gpu-backend/server/metrics.js";
import { eventually } from "../support/eventually.js";

// The pod's app in this process, so the request objects it is handed can be inspected: a listener left on a
// finished request's signal kept every request, its response and its generation alive for the process's life
// (undici holds a Request's signal from a FinalizationRegistry until the Request is collected).
const MODEL = "tiny";
let model: DeepSeekModel;
let scheduler: Scheduler;
let app: ReturnType<typeof createPodApp>;

beforeAll(async () => {
  const dir = inject("tinyModelDir");
  model = await DeepSeekModel.load(dir, { threads: 1 });
  const codec = TextCodec.load(dir, model.config.eosTokenIds);
  scheduler = new Scheduler(model, { maxBatchTokens: 256, maxRunning: 8, numBlocks: 64, blockSize: 16 });
  scheduler.start();
  app = createPodApp({
    model,
    codec,
    encode: async (text, opts) => codec.encode(text, opts),
    scheduler,
    modelId: MODEL,
    podId: "test",
    metrics: new PodMetrics(),
    state: { ready: true, draining: false },
    maxBodyBytes: 1 << 20,
  });
});
afterAll(async () => {
  await scheduler?.stop();
  await model?.close();
});

const request = (body: Record<string, unknown>, signal?: AbortSignal) =>
  new Request("http://pod/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, prompt: "Hello there", temperature: 0, ...body }),
    ...(signal ? { signal } : {}),
  });
const abortListeners = (r: Request) => getEventListeners(r.signal, "abort").length;

describe("a request's abort signal", () => {
  it("is released when a non-streaming request answers", async () => {
    const req = request({ max_tokens: 4 });
    const res = await app.fetch(req);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { choices: unknown[] }).choices).toHaveLength(1);
    expect(abortListeners(req)).toBe(0);
  });

  it("is watched while a stream runs and released when it ends", async () => {
    const req = request({ max_tokens: 6, stream: true });
    const res = await app.fetch(req);
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
    const req = request({ max_tokens: 200, stream: true, ignore_eos: true }, ac.signal);
    const res = await app.fetch(req);
    const reader = res.body!.getReader();
    await reader.read();
    expect(scheduler.stats().running).toBe(1);
    ac.abort();
    const after = await eventually(5_000, async () => scheduler.stats(), (s) => s.running === 0);
    expect(after.running).toBe(0);
    expect(after.blocks.used).toBe(0);
    expect(abortListeners(req)).toBe(0);
  });
});
