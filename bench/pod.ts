import { parseArgs } from "node:util";
import { startPod, type PodProcess } from "../scripts/pod-process.js";
import { Rng } from "../gpu-backend/engine/rng.js";
import { ensureBenchModel } from "./bench-model.js";

/**
 * `npm run -s bench:pod -- --json [--max-tokens 96] [--prompt-tokens 32]`
 * Output tokens/s of a real pod on the benchmark model at 1, 8, 32 and 64 concurrent streams; the same at 32
 * with the per-token expert loop (grouping disabled); --ep 1 vs --ep 2; and time to first token for a
 * 2k-token shared prefix, cached vs uncached.
 */
const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    "max-tokens": { type: "string", default: "96" },
    "prompt-tokens": { type: "string", default: "32" },
    concurrency: { type: "string", default: "1,8,32,64" },
  },
});
const maxTokens = Number(values["max-tokens"]);
const promptTokens = Number(values["prompt-tokens"]);
const MODEL = "bench-moe";
const dir = ensureBenchModel();
const rng = new Rng(17);
const randomPrompt = (n: number) => Array.from({ length: n }, () => 3 + Math.floor(rng.uniform() * 16000));

interface StreamResult {
  ttftMs: number;
  tokens: number;
}

/** One streamed completion; counts content chunks as tokens (the pod sends one per token). */
async function stream(pod: PodProcess, prompt: number[], max: number, tenant = "bench"): Promise<StreamResult> {
  const t0 = performance.now();
  const res = await fetch(`${pod.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-tenant-id": tenant },
    body: JSON.stringify({ model: MODEL, prompt, max_tokens: max, temperature: 0.8, seed: 1, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`pod answered ${res.status}: ${await res.text()}`);
  let ttft = -1;
  let usage = 0;
  const decoder = new TextDecoder();
  let buf = "";
  const reader = res.body.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    if (ttft < 0) ttft = performance.now() - t0;
    buf += decoder.decode(r.value, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith("data: {")) continue;
      const obj = JSON.parse(ev.slice(6)) as { usage?: { completion_tokens: number } | null; error?: unknown };
      if (obj.error) throw new Error(JSON.stringify(obj.error));
      if (obj.usage) usage = obj.usage.completion_tokens;
    }
  }
  return { ttftMs: ttft, tokens: usage };
}

async function throughput(pod: PodProcess, concurrency: number): Promise<{ tokens_per_s: number; ttft_p50_ms: number }> {
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: concurrency }, () => stream(pod, randomPrompt(promptTokens), maxTokens)));
  const seconds = (performance.now() - t0) / 1000;
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  const ttfts = results.map((r) => r.ttftMs).sort((a, b) => a - b);
  return { tokens_per_s: +(tokens / seconds).toFixed(1), ttft_p50_ms: +ttfts[Math.floor(ttfts.length / 2)]!.toFixed(1) };
}

async function withPod<T>(args: string[], f: (pod: PodProcess) => Promise<T>): Promise<T> {
  const pod = await startPod(["--model", dir, "--served-model-name", MODEL, "--max-running", "64", ...args], {}, 600_000);
  try {
    await stream(pod, randomPrompt(16), 4); // warm-up
    return await f(pod);
  } finally {
    await pod.stop("SIGKILL");
  }
}

const levels = values.concurrency!.split(",").map(Number);
const log = (s: string) => console.error(`[bench:pod] ${s}`);

log("grouped experts, --ep 1");
const grouped = await withPod([], async (pod) => {
  const out: Record<string, unknown> = {};
  for (const c of levels) {
    out[`c${c}`] = await throughput(pod, c);
    log(`c=${c}: ${JSON.stringify(out[`c${c}`])}`);
  }
  // 2k-token shared prefix: first sight (uncached) vs a second request sharing it (cached), per fresh prefix.
  const cold: number[] = [];
  const warm: number[] = [];
  for (let trial = 0; trial < 3; trial++) {
    const prefix = randomPrompt(2048);
    cold.push((await stream(pod, [...prefix, ...randomPrompt(8)], 1)).ttftMs);
    warm.push((await stream(pod, [...prefix, ...randomPrompt(8)], 1)).ttftMs);
  }
  const med = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
  out.prefix_2k = { ttft_uncached_ms: +med(cold).toFixed(1), ttft_cached_ms: +med(warm).toFixed(1), cached_over_uncached: +(med(warm) / med(cold)).toFixed(3) };
  log(`prefix: ${JSON.stringify(out.prefix_2k)}`);
  return out;
});

log("per-token expert loop at 32");
const perToken = await withPod(["--no-expert-grouping"], (pod) => throughput(pod, 32));
log(JSON.stringify(perToken));

log("--ep 2");
const ep2 = await withPod(["--ep", "2"], async (pod) => ({ c1: await throughput(pod, 1), c32: await throughput(pod, 32) }));
log(JSON.stringify(ep2));

const g = grouped as Record<string, { tokens_per_s: number }>;
const report = {
  model: "bench/bench-moe.config.json (204.5M params, 64 experts top-6)",
  prompt_tokens: promptTokens,
  max_tokens: maxTokens,
  grouped_ep1: grouped,
  per_token_expert_loop_ep1: { c32: perToken },
  ep2,
  ratios: {
    c32_over_c1: +(g.c32!.tokens_per_s / g.c1!.tokens_per_s).toFixed(2),
    grouped_over_per_token_c32: +(g.c32!.tokens_per_s / perToken.tokens_per_s).toFixed(2),
    ep2_over_ep1_c32: +(ep2.c32.tokens_per_s / g.c32!.tokens_per_s).toFixed(2),
    ep2_over_ep1_c1: +(ep2.c1.tokens_per_s / g.c1!.tokens_per_s).toFixed(2),
    prefix_cached_over_uncached_ttft: (grouped.prefix_2k as { cached_over_uncached: number }).cached_over_uncached,
  },
};
console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
process.exit(0);
