import { parseArgs } from "node:util";
import { startPod, type PodProcess } from "../scripts/pod-process.js";
import { Rng } from "../gpu-backend/engine/rng.js";
import { ensureBenchModel } from "./bench-model.js";

/**
 * `npm run -s bench:pod -- --json [--max-tokens 96] [--prompt-tokens 32] [--ep 1,2] [--threads N]`
 * Output tokens/s of a real pod on the benchmark model at 1, 8, 32 and 64 concurrent streams, with each `--ep`
 * (default 1 and 2, one rank per core on the 2-core reference machine); the same at 32 with the per-token expert
 * loop (grouping disabled) for each; and time to first token for a 2k-token shared prefix, cached vs uncached.
 * `--threads` is passed to the pods (their pools' size; on larger hosts, the core count).
 */
const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    "max-tokens": { type: "string", default: "96" },
    "prompt-tokens": { type: "string", default: "32" },
    concurrency: { type: "string", default: "1,8,32,64" },
    ep: { type: "string", default: "1,2" },
    threads: { type: "string" },
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
type Figures = { tokens_per_s: number; ttft_p50_ms: number };

/** Tokens/s at every concurrency level on one pod configuration. */
async function series(args: string[], label: string, prefix: boolean): Promise<Record<string, unknown>> {
  log(label);
  return withPod(args, async (pod) => {
    const out: Record<string, unknown> = {};
    for (const c of levels) {
      out[`c${c}`] = await throughput(pod, c);
      log(`${label} c=${c}: ${JSON.stringify(out[`c${c}`])}`);
    }
    if (!prefix) return out;
    // 2k-token shared prefix: first sight (uncached) vs a second request sharing it (cached), per fresh prefix.
    const cold: number[] = [];
    const warm: number[] = [];
    for (let trial = 0; trial < 3; trial++) {
      const p = randomPrompt(2048);
      cold.push((await stream(pod, [...p, ...randomPrompt(8)], 1)).ttftMs);
      warm.push((await stream(pod, [...p, ...randomPrompt(8)], 1)).ttftMs);
    }
    const med = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
    out.prefix_2k = { ttft_uncached_ms: +med(cold).toFixed(1), ttft_cached_ms: +med(warm).toFixed(1), cached_over_uncached: +(med(warm) / med(cold)).toFixed(3) };
    log(`${label} prefix: ${JSON.stringify(out.prefix_2k)}`);
    return out;
  });
}

async function perTokenAt32(args: string[], label: string): Promise<Figures> {
  log(label);
  const r = await withPod(["--no-expert-grouping", ...args], (pod) => throughput(pod, 32));
  log(`${label}: ${JSON.stringify(r)}`);
  return r;
}

// --ep 1: experts in the pod's main thread; --ep N: N ranks, rank 0 in the main thread, the others on workers.
const podArgs = values.threads ? ["--threads", values.threads] : [];
const runs: Record<string, { grouped: Record<string, unknown>; per_token_expert_loop: { c32: Figures } }> = {};
for (const [i, n] of values.ep!.split(",").map(Number).entries()) {
  const args = ["--ep", String(n), ...podArgs];
  const grouped = await series(args, `grouped experts, --ep ${n}`, i === 0);
  runs[`ep${n}`] = { grouped, per_token_expert_loop: { c32: await perTokenAt32(args, `per-token expert loop at 32, --ep ${n}`) } };
}

const tps = (r: Record<string, unknown>, c: number) => (r[`c${c}`] as Figures | undefined)?.tokens_per_s ?? NaN;
const [first, ...others] = Object.keys(runs);
const report = {
  model: "bench/bench-moe.config.json (204.5M params, 64 experts top-6)",
  prompt_tokens: promptTokens,
  max_tokens: maxTokens,
  ...(values.threads ? { threads: Number(values.threads) } : {}),
  ...runs,
  ratios: {
    ...Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, {
      c32_over_c1: +(tps(r.grouped, 32) / tps(r.grouped, 1)).toFixed(2),
      grouped_over_per_token_c32: +(tps(r.grouped, 32) / r.per_token_expert_loop.c32.tokens_per_s).toFixed(2),
    }])),
    ...Object.fromEntries(others.map((k) => [`${k}_over_${first}`, Object.fromEntries(levels.map((c) => [`c${c}`, +(tps(runs[k]!.grouped, c) / tps(runs[first!]!.grouped, c)).toFixed(2)]))])),
    prefix_cached_over_uncached_ttft: (runs[first!]!.grouped.prefix_2k as { cached_over_uncached: number }).cached_over_uncached,
  },
};
console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
process.exit(0);
