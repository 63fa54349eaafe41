import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startPod, type PodProcess } from "../../scripts/pod-process.js";

const MODEL = "deepseek-v3-tiny";
const pods: PodProcess[] = [];
let reference: OpenAI;

const clientFor = (p: PodProcess) => new OpenAI({ baseURL: `${p.url}/v1`, apiKey: "unused", maxRetries: 0 });
const prompts = Array.from({ length: 8 }, (_, i) => `Request number ${i}: tell me about the edge gateway and its tenants`);

async function greedyAll(client: OpenAI, maxTokens = 40): Promise<string[]> {
  const rs = await Promise.all(prompts.map((prompt) => client.completions.create({ model: MODEL, prompt, max_tokens: maxTokens, temperature: 0 })));
  return rs.map((r) => r.choices[0]!.text);
}

let expected: string[];

beforeAll(async () => {
  const ref = await startPod(["--model", inject("tinyModelDir"), "--served-model-name", MODEL]);
  pods.push(ref);
  reference = clientFor(ref);
  expected = [];
  for (const prompt of prompts) {
    expected.push((await reference.completions.create({ model: MODEL, prompt, max_tokens: 40, temperature: 0 })).choices[0]!.text);
  }
});
afterAll(async () => {
  await Promise.all(pods.map((p) => p.stop("SIGKILL")));
});

describe("pod under pressure", () => {
  it("preemption under a tiny KV budget still completes every request correctly", async () => {
    // 10 blocks of 16 = 160 token slots for 8 sequences of ~55 tokens each.
    const small = await startPod(["--model", inject("tinyModelDir"), "--served-model-name", MODEL, "--kv-blocks", "10", "--block-size", "16"]);
    pods.push(small);
    expect(await greedyAll(clientFor(small))).toEqual(expected);
    const load = (await (await fetch(`${small.url}/load`)).json()) as { totals: { preemptions: number }; kv_blocks: { used: number } };
    expect(load.totals.preemptions).toBeGreaterThan(0);
    expect(load.kv_blocks.used).toBe(0);
  });

  it("expert parallelism: --ep 2 (with hot-expert replicas) gives the same tokens as one process", async () => {
    const ep = await startPod(["--model", inject("tinyModelDir"), "--served-model-name", MODEL, "--ep", "2", "--ep-replicas", "2", "--ep-rebalance-every", "5"]);
    pods.push(ep);
    expect(await greedyAll(clientFor(ep))).toEqual(expected);
    const load = (await (await fetch(`${ep.url}/load`)).json()) as { experts: { kind: string; ranks: number; replicas: Record<string, number[]> } };
    expect(load.experts).toMatchObject({ kind: "expert-parallel", ranks: 2 });
    expect(Object.keys(load.experts.replicas).length).toBeGreaterThan(0);
  });

  it("expert parallelism: --ep 3 (two worker ranks reading one copy of the step's states) gives the same tokens", async () => {
    const ep = await startPod(["--model", inject("tinyModelDir"), "--served-model-name", MODEL, "--ep", "3"]);
    pods.push(ep);
    expect(await greedyAll(clientFor(ep))).toEqual(expected);
  });

  it("per-token expert loop (grouping disabled) gives the same tokens", async () => {
    const naive = await startPod(["--model", inject("tinyModelDir"), "--served-model-name", MODEL, "--no-expert-grouping"]);
    pods.push(naive);
    expect(await greedyAll(clientFor(naive))).toEqual(expected);
  });

  it("drains on SIGTERM: running streams finish, new requests are refused, the process exits 0", async () => {
    const pod = await startPod(["--model", inject("tinyModelDir"), "--served-model-name", MODEL]);
    pods.push(pod);
    const client = clientFor(pod);
    // ignore_eos (a vLLM extension the pod honours) so the stream surely runs to max_tokens.
    const stream = await client.completions.create({ model: MODEL, prompt: "A long story:", max_tokens: 500, temperature: 0.7, seed: 5, stream: true, ignore_eos: true } as never);
    const it = (stream as unknown as AsyncIterable<OpenAI.Completions.Completion>)[Symbol.asyncIterator]();
    await it.next();
    const exit = pod.stop("SIGTERM");
    // Wait until the pod reports draining, then check that it refuses new work.
    let health = await fetch(`${pod.url}/health`);
    while (health.status === 200) health = await fetch(`${pod.url}/health`);
    expect(health.status).toBe(503);
    const refused = await client.completions.create({ model: MODEL, prompt: "x", max_tokens: 2 }).catch((e) => e);
    expect(refused.status).toBe(503);
    let finish: string | null = null;
    for (let r = await it.next(); !r.done; r = await it.next()) finish = r.value.choices[0]?.finish_reason ?? finish;
    expect(finish).toBe("length");
    expect(await exit).toBe(0);
  });

  it("a drain lets an answer already generated reach its client whole, read after the generation ended", async () => {
    const pod = await startPod(["--model", inject("tinyModelDir"), "--served-model-name", MODEL]);
    pods.push(pod);
    // 16 choices × 250 tokens × 20 alternatives: ~6 MB of JSON, more than the sockets between the processes hold.
    const res = await fetch(`${pod.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Tell" }], max_tokens: 250, n: 16, logprobs: true, top_logprobs: 20, temperature: 1, seed: 3, ignore_eos: true }),
    });
    expect(res.status).toBe(200);
    const exit = pod.stop("SIGTERM");
    // Nothing is read until the pod has nothing left to generate (or has stopped taking connections).
    for (;;) {
      const load = await fetch(`${pod.url}/load`).then((r) => r.json() as Promise<{ active_requests: number; running: number }>, () => null);
      if (!load || (load.active_requests === 0 && load.running === 0)) break;
    }
    const body = JSON.parse(await res.text()) as { choices: { logprobs: { content: unknown[] } }[] };
    expect(body.choices).toHaveLength(16);
    expect(body.choices.every((c) => c.logprobs.content.length === 250)).toBe(true);
    expect(await exit).toBe(0);
  });

  it("a drain also waits for a request still being tokenized: it gets its answer before the pod exits", async () => {
    const pod = await startPod(["--model", inject("tinyModelDir"), "--served-model-name", MODEL]);
    pods.push(pod);
    // ~1 MB of prompt: about a second of tokenizing on the pod's tokenizer thread, then refused as too long.
    const answer = fetch(`${pod.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: "word ".repeat(200_000), max_tokens: 2 }),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error?: { code?: string } } }));
    // Admitted (counted active) but not yet in the scheduler: it is being tokenized.
    let load = { active_requests: 0, running: 0, waiting: 0 };
    for (const until = Date.now() + 20_000; load.active_requests === 0 && Date.now() < until; ) load = await (await fetch(`${pod.url}/load`)).json();
    expect(load).toMatchObject({ active_requests: 1, running: 0, waiting: 0 });
    const exit = pod.stop("SIGTERM");
    const r = await answer;
    expect(r.status).toBe(400);
    expect(r.body.error?.code).toBe("context_length_exceeded");
    expect(await exit).toBe(0);
  });
});
