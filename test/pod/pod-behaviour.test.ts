import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startPod, type PodProcess } from "../../scripts/pod-process.js";
import { TextCodec } from "../../gpu-backend/engine/tokenizer.js";
import { ChatCompletionChunkSchema, ChatCompletionSchema } from "../../src/openai/chat.js";
import { CompletionSchema } from "../../src/openai/completions.js";
import { ModelListSchema } from "../../src/openai/models.js";

const MODEL = "deepseek-v3-tiny";
let pod: PodProcess;
let client: OpenAI;

beforeAll(async () => {
  pod = await startPod(["--model", inject("tinyModelDir"), "--served-model-name", MODEL, "--max-running", "16"]);
  client = new OpenAI({ baseURL: `${pod.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
afterAll(async () => {
  await pod?.stop();
});

const load = async () => (await fetch(`${pod.url}/load`)).json() as Promise<{ running: number; waiting: number; kv_blocks: { used: number } }>;

const prompts = [
  "Hello, how are you today?",
  "The quick brown fox",
  "Tell me about the weather and the news and the price of tokens in the cache",
  "SELECT id FROM tenants",
  "こんにちは",
  "1 2 3 4 5",
];

async function greedy(prompt: string, tenant?: string, maxTokens = 24): Promise<string> {
  const r = await client.completions.create(
    { model: MODEL, prompt, max_tokens: maxTokens, temperature: 0 },
    tenant ? { headers: { "x-tenant-id": tenant } } : {},
  );
  return r.choices[0]!.text;
}

describe("pod", () => {
  it("answers in OpenAI's exact shapes", async () => {
    const raw = (path: string, body: unknown) =>
      fetch(`${pod.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    ChatCompletionSchema.parse(await (await raw("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 4 })).json());
    CompletionSchema.parse(await (await raw("/v1/completions", { model: MODEL, prompt: "hi", max_tokens: 4 })).json());
    ModelListSchema.parse(await (await fetch(`${pod.url}/v1/models`)).json());
    const text = await (await raw("/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 4, stream: true, stream_options: { include_usage: true } })).text();
    const events = text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
    expect(events.at(-1)).toBe("[DONE]");
    for (const e of events.slice(0, -1)) ChatCompletionChunkSchema.parse(JSON.parse(e));
  });

  it("serves the model list, health and load", async () => {
    expect((await client.models.list()).data.map((m) => m.id)).toEqual([MODEL]);
    expect((await fetch(`${pod.url}/health`)).status).toBe(200);
    const l = await load();
    expect(l.kv_blocks.used).toBe(0);
    const metrics = await (await fetch(`${pod.url}/metrics`)).text();
    expect(metrics).toMatch(/^pod_requests_waiting 0$/m);
    expect(metrics).toMatch(/^pod_expert_tokens_total\{expert="0"\} \d+$/m);
    expect(metrics).toMatch(/^pod_expert_load_imbalance\{layer="1"\} [\d.]+$/m);
  });

  it("histograms time to first token, the gaps between a choice's tokens, whole requests and steps", async () => {
    const read = async () => {
      const text = await (await fetch(`${pod.url}/metrics`)).text();
      const steps = ((await (await fetch(`${pod.url}/load`)).json()) as { totals: { steps: number } }).totals.steps;
      const value = (series: string) => Number(text.split("\n").find((l) => l.startsWith(`${series} `))?.split(" ")[1]);
      return { text, steps, value };
    };
    const before = await read();
    const complete = async (prompt: string, extra: Record<string, unknown>) => {
      const res = await fetch(`${pod.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: MODEL, prompt, max_tokens: 6, ignore_eos: true, ...extra }) });
      expect(res.status).toBe(200);
      await res.text();
    };
    // Four requests, five choices of 6 tokens each: 4 first tokens, 5 × 5 gaps.
    await Promise.all([complete("a", { stream: true }), complete("b", { stream: true }), complete("c", {}), complete("d", { n: 2, temperature: 1, seed: 3, stream: true })]);
    const after = await read();
    const delta = (series: string) => after.value(series) - before.value(series);
    expect(delta("pod_time_to_first_token_seconds_count")).toBe(4);
    expect(delta("pod_inter_token_latency_seconds_count")).toBe(25);
    expect(delta("pod_request_duration_seconds_count")).toBe(4);
    expect(delta("pod_step_duration_seconds_count")).toBe(after.steps - before.steps);
    expect(delta("pod_step_forward_seconds_count")).toBe(after.steps - before.steps);
    expect(delta("pod_step_tokens_sum")).toBeGreaterThanOrEqual(4 + 5 * 5);
    for (const name of ["pod_time_to_first_token_seconds", "pod_inter_token_latency_seconds", "pod_request_duration_seconds", "pod_step_duration_seconds"]) {
      const buckets = [...after.text.matchAll(new RegExp(`^${name}_bucket\\{le="[^"]+"\\} (\\d+)$`, "gm"))].map((m) => Number(m[1]));
      expect(buckets.length).toBeGreaterThan(10);
      expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
      expect(buckets.at(-1)).toBe(after.value(`${name}_count`));
    }
    // A request is never faster than its first token.
    expect(delta("pod_request_duration_seconds_sum")).toBeGreaterThan(delta("pod_time_to_first_token_seconds_sum"));
  });

  it("batch invariance: greedy outputs of concurrent requests equal their one-at-a-time outputs", async () => {
    const alone: string[] = [];
    for (const p of prompts) alone.push(await greedy(p));
    const together = await Promise.all(prompts.map((p) => greedy(p)));
    expect(together).toEqual(alone);
  });

  it("seed reproducibility: the same seed gives the same tokens, alone or in a crowd", async () => {
    const req = { model: MODEL, prompt: "Once upon a time", max_tokens: 24, temperature: 1, top_p: 0.9, seed: 1234 };
    const a = (await client.completions.create(req)).choices[0]!.text;
    const crowd = await Promise.all([
      client.completions.create(req),
      ...prompts.map((p) => client.completions.create({ ...req, prompt: p, seed: 99 })),
    ]);
    expect(crowd[0]!.choices[0]!.text).toBe(a);
    const other = (await client.completions.create({ ...req, seed: 1235 })).choices[0]!.text;
    expect(other).not.toBe(a);
  });

  it("n choices are distinct samples, each reproducible", async () => {
    const req = { model: MODEL, prompt: "Hello", max_tokens: 12, temperature: 1, seed: 7, n: 3 };
    const a = await client.completions.create(req);
    const b = await client.completions.create(req);
    expect(a.choices.map((c) => c.text)).toEqual(b.choices.map((c) => c.text));
    expect(new Set(a.choices.map((c) => c.text)).size).toBeGreaterThan(1);
    expect(a.usage!.prompt_tokens).toBe(b.usage!.prompt_tokens);
  });

  it("n choices of a long prompt compute it once: the others start from its cached blocks", async () => {
    const prompt = Array.from({ length: 150 }, (_, i) => 40 + ((i * 37) % 900));
    const totals = async () => ((await (await fetch(`${pod.url}/load`)).json()) as { totals: { prompt_tokens: number; cached_prompt_tokens: number } }).totals;
    const before = await totals();
    const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 3, temperature: 0, n: 4 });
    const after = await totals();
    expect(after.prompt_tokens - before.prompt_tokens).toBe(4 * 150);
    // Blocks of 16: the first choice computes all 150 tokens; each other takes ⌊149 / 16⌋ = 9 blocks from the cache.
    expect(after.cached_prompt_tokens - before.cached_prompt_tokens).toBe(3 * 144);
    // The prompt is billed once, as computed by the first choice.
    expect(r.usage!.prompt_tokens).toBe(150);
    expect(r.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    // Greedy: every choice says what one request alone says.
    const one = (await client.completions.create({ model: MODEL, prompt, max_tokens: 3, temperature: 0 })).choices[0]!.text;
    expect(r.choices.map((c) => c.text)).toEqual([one, one, one, one]);
  });

  it("stop strings end the text even across chunk boundaries, and never leak a partial stop string", async () => {
    const full = await greedy(prompts[2]!, undefined, 40);
    // A stop string that straddles token boundaries: take a slice of the greedy text.
    const stop = full.slice(9, 14);
    const cut = full.slice(0, full.indexOf(stop));
    expect(stop.length).toBe(5);
    const plain = await client.completions.create({ model: MODEL, prompt: prompts[2]!, max_tokens: 40, temperature: 0, stop: [stop] });
    expect(plain.choices[0]!.text).toBe(cut);
    expect(plain.choices[0]!.finish_reason).toBe("stop");
    const stream = await client.completions.create({ model: MODEL, prompt: prompts[2]!, max_tokens: 40, temperature: 0, stop: [stop], stream: true });
    let streamed = "";
    const deltas: string[] = [];
    for await (const chunk of stream) {
      const t = chunk.choices[0]?.text ?? "";
      deltas.push(t);
      streamed += t;
      expect(streamed.includes(stop)).toBe(false);
    }
    expect(streamed).toBe(cut);
  });

  it("a cancelled stream frees its blocks at the next step", async () => {
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Talk for a long time" }], max_tokens: 2000, stream: true, temperature: 0.8 });
    let n = 0;
    for await (const _ of stream) if (++n === 3) break; // breaking aborts the HTTP request
    const deadline = Date.now() + 10_000;
    let l = await load();
    while ((l.running > 0 || l.kv_blocks.used > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      l = await load();
    }
    expect(l.running).toBe(0);
    expect(l.kv_blocks.used).toBe(0);
  });

  it("prefix cache: a repeated prefix is counted as cached tokens for the same tenant, never across tenants", async () => {
    const system = "You are a helpful assistant for the edge gateway. ".repeat(12);
    const ask = async (tenant: string, q: string) =>
      client.chat.completions.create(
        { model: MODEL, messages: [{ role: "system", content: system }, { role: "user", content: q }], max_tokens: 2, temperature: 0 },
        { headers: { "x-tenant-id": tenant } },
      );
    const first = await ask("tenant-a", "first question");
    expect(first.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    const second = await ask("tenant-a", "second question");
    const cached = second.usage!.prompt_tokens_details!.cached_tokens!;
    expect(cached).toBeGreaterThanOrEqual(64);
    expect(cached % 16).toBe(0);
    const usage = second.usage as unknown as { prompt_cache_hit_tokens: number; prompt_cache_miss_tokens: number };
    expect(usage.prompt_cache_hit_tokens).toBe(cached);
    expect(usage.prompt_cache_miss_tokens).toBe(second.usage!.prompt_tokens - cached);
    const otherTenant = await ask("tenant-b", "second question");
    expect(otherTenant.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
  });

  it("long prompts (tokenized off the event loop) answer as their token ids do", async () => {
    const codec = TextCodec.load(inject("tinyModelDir"));
    const prompt = "Tokens for the edge, the pods and the cache. ".repeat(120);
    const ids = codec.encode(prompt, { addBos: true });
    expect(prompt.length).toBeGreaterThan(4096);
    expect(ids.length).toBeLessThan(4000);
    const asText = await client.completions.create({ model: MODEL, prompt, max_tokens: 8, temperature: 0 });
    const asIds = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 8, temperature: 0 });
    expect(asText.usage!.prompt_tokens).toBe(ids.length);
    expect(asText.choices[0]!.text).toBe(asIds.choices[0]!.text);
  });

  it("refuses prompts beyond the context with context_length_exceeded", async () => {
    const err = await client.completions.create({ model: MODEL, prompt: "word ".repeat(5000), max_tokens: 10 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe("context_length_exceeded");
    const err2 = await client.completions.create({ model: MODEL, prompt: "hi", max_tokens: 100_000 }).catch((e) => e);
    expect(err2.code).toBe("context_length_exceeded");
  });

  it("answers bad requests with OpenAI errors and keeps serving", async () => {
    const bad = await fetch(`${pod.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    expect(bad.status).toBe(400);
    const wrongModel = await client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }).catch((e) => e);
    expect(wrongModel.status).toBe(404);
    const image = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:," } }] }] }).catch((e) => e);
    expect(image.status).toBe(400);
    const fim = await client.completions.create({ model: MODEL, prompt: "def f(", suffix: "return x", max_tokens: 4 });
    expect(fim.choices[0]!.text.length).toBeGreaterThanOrEqual(0);
    expect((await greedy("still alive?")).length).toBeGreaterThan(0);
    // Refusals are counted by status alongside successes.
    const metrics = await (await fetch(`${pod.url}/metrics`)).text();
    expect(metrics).toMatch(/^pod_http_requests_total\{route="\/v1\/chat\/completions",status="400"\} [1-9]/m);
    expect(metrics).toMatch(/^pod_http_requests_total\{route="\/v1\/chat\/completions",status="404"\} [1-9]/m);
    expect(metrics).toMatch(/^pod_http_requests_total\{route="\/v1\/completions",status="200"\} [1-9]/m);
    // The process's own gauges, for leak and saturation alerts.
    expect(metrics).toMatch(/^process_resident_memory_bytes [1-9]\d{6,}$/m);
    expect(metrics).toMatch(/^nodejs_heap_size_used_bytes [1-9]\d{5,}$/m);
    expect(metrics).toMatch(/^process_cpu_seconds_total \d+(\.\d+)?$/m);
  });

  it("logprobs: chat top_logprobs and completion logprobs are well-formed", async () => {
    const chat = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3 });
    const content = chat.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(5);
    for (const t of content) {
      expect(t.top_logprobs).toHaveLength(3);
      expect(t.logprob).toBeLessThanOrEqual(0);
      // Greedy: the chosen token is the most likely one.
      expect(t.logprob).toBeCloseTo(t.top_logprobs[0]!.logprob, 6);
    }
    const cmpl = await client.completions.create({ model: MODEL, prompt: "Hi", max_tokens: 4, logprobs: 2, temperature: 0 });
    expect(cmpl.choices[0]!.logprobs!.tokens).toHaveLength(4);
    expect(cmpl.choices[0]!.logprobs!.text_offset![0]).toBe(0);
  });

  it("echo with logprobs scores every prompt token, as one-token requests would, even for a cached prompt", async () => {
    // Token ids: no BOS is added, so the first token has nothing before it (null, as OpenAI answers).
    const ids = [5, 77, 300, 12, 999, 41];
    const echoed = await client.completions.create({ model: MODEL, prompt: ids, echo: true, logprobs: 2, max_tokens: 2, temperature: 0 });
    const lp = echoed.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(ids.length + 2);
    expect(lp.token_logprobs![0]).toBeNull();
    expect(lp.top_logprobs![0]).toBeNull();
    for (let q = 1; q < ids.length; q++) {
      // The same score from a request that must pick token q next (logit_bias moves the choice, not the logprob).
      const forced = await client.completions.create({ model: MODEL, prompt: ids.slice(0, q), max_tokens: 1, temperature: 0, logprobs: 0, logit_bias: { [ids[q]!]: 100 } });
      expect(lp.token_logprobs![q]).toBeCloseTo(forced.choices[0]!.logprobs!.token_logprobs![0]!, 4);
      expect(Object.keys(lp.top_logprobs![q]!)).toHaveLength(2);
    }
    // Streamed with n = 2: each choice's echo chunk carries the prompt's scores (computed once, by the first).
    const both = await client.completions.create({ model: MODEL, prompt: ids, echo: true, logprobs: 2, max_tokens: 2, temperature: 0, n: 2, stream: true });
    const echoChunks = new Map<number, unknown>();
    for await (const ch of both) for (const c of ch.choices) if (!echoChunks.has(c.index)) echoChunks.set(c.index, c.logprobs!.token_logprobs);
    expect([...echoChunks.keys()].sort()).toEqual([0, 1]);
    for (const scores of echoChunks.values()) expect(scores).toEqual(lp.token_logprobs!.slice(0, ids.length));
    // Not streamed, two short prompts × n = 2: every choice's logprobs open with its own prompt's echo.
    const pairs = await client.completions.create({ model: MODEL, prompt: ["The cat", "A dog sat"], echo: true, logprobs: 1, max_tokens: 3, temperature: 0.9, seed: 5, n: 2 });
    for (const ch of pairs.choices) {
      const echoedText = ch.index < 2 ? "The cat" : "A dog sat";
      const k = ch.logprobs!.tokens!.findIndex((_, i) => ch.logprobs!.tokens!.slice(0, i + 1).join("") === echoedText);
      expect(k).toBeGreaterThanOrEqual(0);
      expect(ch.logprobs!.text_offset!.slice(0, k + 1)).toEqual(ch.logprobs!.tokens!.slice(0, k + 1).map((_, i) => ch.logprobs!.tokens!.slice(0, i).join("").length));
    }

    // Text: the server's BOS is not echoed; tokens and offsets rebuild the prompt. A cached prompt is still scored.
    const prompt = "The weather and the news and the price of tokens in the cache, again and again. ".repeat(3);
    await client.completions.create({ model: MODEL, prompt, max_tokens: 1 });
    const again = await client.completions.create({ model: MODEL, prompt, echo: true, logprobs: 1, max_tokens: 3, temperature: 0 });
    const c = again.choices[0]!;
    const plp = c.logprobs!;
    const promptCount = again.usage!.prompt_tokens - 1;
    expect(again.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
    expect(plp.tokens!.slice(0, promptCount).join("")).toBe(prompt);
    expect(plp.tokens).toHaveLength(promptCount + again.usage!.completion_tokens);
    expect(plp.token_logprobs!.every((x) => typeof x === "number" && x <= 0)).toBe(true);
    plp.tokens!.forEach((t, i) => {
      const at = plp.text_offset![i]!;
      expect(c.text.slice(at, at + t.length)).toBe(t);
    });
    // n choices: the prompt is scored once, and every choice echoes those scores.
    const three = await client.completions.create({ model: MODEL, prompt, echo: true, logprobs: 1, max_tokens: 3, temperature: 0, n: 3 });
    for (const ch of three.choices) {
      expect(ch.logprobs!.tokens!.slice(0, promptCount).join("")).toBe(prompt);
      expect(ch.logprobs!.token_logprobs!.slice(0, promptCount)).toEqual(plp.token_logprobs!.slice(0, promptCount));
    }

    const withSuffix = await client.completions.create({ model: MODEL, prompt: "def f(", suffix: "return x", echo: true, logprobs: 1, max_tokens: 2 }).catch((e) => e);
    expect(withSuffix).toMatchObject({ status: 400, param: "suffix" });

    // Streaming: the echo chunk carries the prompt's logprobs.
    const stream = await client.completions.create({ model: MODEL, prompt, echo: true, logprobs: 1, max_tokens: 2, temperature: 0, stream: true });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    expect(chunks[0]!.choices[0]!.text).toBe(prompt);
    expect(chunks[0]!.choices[0]!.logprobs!.token_logprobs).toEqual(plp.token_logprobs!.slice(0, promptCount));
  });

  it("max_tokens 0 with echo returns the prompt alone (scored with logprobs), streamed or not, for every choice", async () => {
    const ids = [5, 77, 300, 12, 999, 41];
    const full = await client.completions.create({ model: MODEL, prompt: ids, echo: true, logprobs: 2, max_tokens: 2, temperature: 0 });
    const scores = full.choices[0]!.logprobs!.token_logprobs!.slice(0, ids.length);
    const alone = await client.completions.create({ model: MODEL, prompt: ids, echo: true, logprobs: 2, max_tokens: 0, n: 2 });
    expect(alone.usage).toMatchObject({ prompt_tokens: ids.length, completion_tokens: 0 });
    expect(alone.choices.map((c) => c.finish_reason)).toEqual(["length", "length"]);
    for (const c of alone.choices) {
      expect(c.logprobs!.tokens).toHaveLength(ids.length);
      expect(c.logprobs!.token_logprobs).toEqual(scores);
      expect(c.text).toBe(c.logprobs!.tokens!.join(""));
    }
    // Streamed: the echo chunk (with its scores), then the finish chunk; no token between.
    const stream = await client.completions.create({ model: MODEL, prompt: ids, echo: true, logprobs: 2, max_tokens: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    expect(chunks.map((ch) => [ch.choices[0]?.text ?? null, ch.choices[0]?.finish_reason ?? null])).toEqual([[alone.choices[0]!.text, null], ["", "length"], [null, null]]);
    expect(chunks[0]!.choices[0]!.logprobs!.token_logprobs).toEqual(scores);
    expect(chunks[2]!.usage).toMatchObject({ prompt_tokens: ids.length, completion_tokens: 0 });
    // Without logprobs: the text alone. Without echo: refused.
    const text = await client.completions.create({ model: MODEL, prompt: "The cat", echo: true, max_tokens: 0 });
    expect(text.choices[0]).toMatchObject({ text: "The cat", finish_reason: "length", logprobs: null });
    const refused = await client.completions.create({ model: MODEL, prompt: "The cat", max_tokens: 0 }).catch((e) => e);
    expect(refused).toMatchObject({ status: 400, param: "max_tokens" });
    const chat = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 0 }).catch((e) => e);
    expect(chat).toMatchObject({ status: 400, param: "max_tokens" });
  });
});
