import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeTinyModel } from "../gpu-backend/tools/write-tiny-model.js";
import { startStack } from "../scripts/stack.js";

/**
 * `npm run -s bench:cache -- --json [--repeats 20]`
 * Through the local stack (gateway + a real pod with the tiny model):
 *  - a repeated deterministic request: time to first token and total latency, edge cache HIT vs MISS;
 *  - a shared long system prompt (~2k tokens) with different questions: time to first token when the pod's
 *    prefix cache holds the prompt vs cold (a fresh prompt each time).
 */
const { values } = parseArgs({ options: { json: { type: "boolean", default: false }, repeats: { type: "string", default: "20" } } });
const repeats = Number(values.repeats);
const MODEL = "deepseek-v3-tiny";
const dir = mkdtempSync(join(tmpdir(), "bench-cache-"));
const modelDir = resolve(process.env.MODEL_DIR ?? join(dir, "model"));
if (!process.env.MODEL_DIR) writeTinyModel(modelDir);
const stack = await startStack({
  gatewayPort: 0,
  persistDir: join(dir, "state"),
  modelDir,
  modelId: MODEL,
  regions: [{ id: "local", name: "Local", latitude: 0, longitude: 0 }],
  pods: [{ id: "pod-bench", region: "local", port: 0, args: ["--max-batch-tokens", "2048"] }],
});

/** One streamed request: ms to the first content delta and to the end, and the x-cache verdict. */
async function timed(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const t0 = performance.now();
  const res = await fetch(`${stack.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.demoKey}`, "content-type": "application/json", ...headers },
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!res.ok || !res.body) throw new Error(`${res.status}: ${await res.text()}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let ttft = -1;
  let buf = "";
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    buf += decoder.decode(r.value, { stream: true });
    if (ttft < 0 && /"content":"[^"]/.test(buf)) ttft = performance.now() - t0;
  }
  return { ttft, total: performance.now() - t0, cache: res.headers.get("x-cache") };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number) => +x.toFixed(2);

try {
  await timed({ model: MODEL, messages: [{ role: "user", content: "warm up" }], max_tokens: 8 }, { "cache-control": "no-store" });

  // Edge cache: each round a new deterministic question, asked twice.
  const miss: { ttft: number; total: number }[] = [];
  const hit: { ttft: number; total: number }[] = [];
  for (let i = 0; i < repeats; i++) {
    const body = { model: MODEL, messages: [{ role: "user", content: `Deterministic question number ${i}: what is an edge cache?` }], max_tokens: 48, temperature: 0 };
    const a = await timed(body);
    const b = await timed(body);
    if (a.cache !== "MISS" || b.cache !== "HIT") throw new Error(`unexpected cache verdicts ${a.cache}/${b.cache}`);
    miss.push(a);
    hit.push(b);
  }

  // Pod prefix cache: ~2k-token system prompt; cold = a system prompt never seen, warm = the same one again.
  const system = (i: number) => `Context ${i}. ${"The gateway routes each request to the nearest healthy region and the pod with its prefix. ".repeat(80)}`;
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < Math.max(3, Math.floor(repeats / 4)); i++) {
    const ask = (q: string) => timed({ model: MODEL, messages: [{ role: "system", content: system(i) }, { role: "user", content: q }], max_tokens: 4, temperature: 0.5 }, { "cache-control": "no-store" });
    cold.push((await ask("first question")).ttft);
    warm.push((await ask("second question")).ttft);
  }

  const report = {
    stack: "gateway (wrangler dev) + one pod, tiny DeepSeek-V3 model",
    repeats,
    edge_cache: {
      miss: { ttft_ms_p50: round(median(miss.map((m) => m.ttft))), total_ms_p50: round(median(miss.map((m) => m.total))) },
      hit: { ttft_ms_p50: round(median(hit.map((m) => m.ttft))), total_ms_p50: round(median(hit.map((m) => m.total))) },
      hit_over_miss_ttft: round(median(hit.map((m) => m.ttft)) / median(miss.map((m) => m.ttft))),
      hit_over_miss_total: round(median(hit.map((m) => m.total)) / median(miss.map((m) => m.total))),
    },
    pod_prefix_cache: {
      prompt_tokens_approx: 2000,
      cold_ttft_ms_p50: round(median(cold)),
      cached_ttft_ms_p50: round(median(warm)),
      cached_over_cold_ttft: round(median(warm) / median(cold)),
    },
  };
  console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
} finally {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
