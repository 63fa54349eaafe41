import { parseArgs } from "node:util";
import { parseModelConfig } from "../gpu-backend/engine/config.js";
import { ContiguousLatentCache } from "../gpu-backend/engine/latent-cache.js";
import { DeepSeekModel } from "../gpu-backend/engine/model.js";
import { parameterCounts } from "../gpu-backend/engine/tensor-names.js";
import { Rng } from "../gpu-backend/engine/rng.js";
import { readFileSync } from "node:fs";
import { BENCH_CONFIG_PATH, ensureBenchModel } from "./bench-model.js";
import { measureReadBandwidth } from "./memory-bandwidth.js";

/**
 * `npm run -s bench:engine -- --json [--backends node,web] [--prefill 512] [--decode 128]`
 * Prefill tokens/s, batch-1 decode tokens/s and the batch-1 decode roofline (active bytes per token ÷ the
 * read bandwidth measured here) for each onnxruntime backend, on the benchmark model.
 */
const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    backends: { type: "string", default: "node,web" },
    prefill: { type: "string", default: "512" },
    decode: { type: "string", default: "128" },
    threads: { type: "string", default: "2" },
  },
});

const threads = Number(values.threads);
const prefillLen = Number(values.prefill);
const decodeLen = Number(values.decode);
const cfg = parseModelConfig(JSON.parse(readFileSync(BENCH_CONFIG_PATH, "utf8")));
const counts = parameterCounts(cfg);
const dir = ensureBenchModel();
const bandwidth = await measureReadBandwidth(threads);
const activeBytes = counts.active * 4;
const roofline = (bandwidth * 1e9) / activeBytes;

const rng = new Rng(7);
const prompt = Array.from({ length: prefillLen }, () => 3 + Math.floor(rng.uniform() * (cfg.vocabSize - 3)));

async function measure(backend: "node" | "web") {
  const t0 = performance.now();
  const model = await DeepSeekModel.load(dir, { backend, threads, onProgress: (l) => console.error(`[${backend}] ${l}`) });
  const loadSeconds = (performance.now() - t0) / 1000;
  const fresh = () => new ContiguousLatentCache(cfg.layers, model.cacheWidth, prefillLen + decodeLen + 8);
  // Warm-up at the measured sizes: onnxruntime grows its memory arena on the first run of a larger shape.
  await model.forward([{ tokens: prompt, past: 0, cache: fresh(), logits: "last" }]);

  let t = performance.now();
  await model.forward([{ tokens: prompt, past: 0, cache: fresh(), logits: "last" }]);
  const prefillTps = prefillLen / ((performance.now() - t) / 1000);

  const cache = fresh();
  await model.forward([{ tokens: prompt.slice(0, 64), past: 0, cache, logits: "last" }]);
  for (let k = 0; k < 4; k++) await model.forward([{ tokens: [prompt[k]!], past: 64 + k, cache, logits: "last" }]);
  t = performance.now();
  for (let k = 0; k < decodeLen; k++) await model.forward([{ tokens: [prompt[k % prefillLen]!], past: 68 + k, cache, logits: "last" }]);
  const decodeTps = decodeLen / ((performance.now() - t) / 1000);
  await model.close();
  return {
    load_seconds: +loadSeconds.toFixed(1),
    prefill_tokens_per_s: +prefillTps.toFixed(1),
    decode_tokens_per_s_batch1: +decodeTps.toFixed(1),
    decode_fraction_of_roofline: +(decodeTps / roofline).toFixed(3),
  };
}

const results: Record<string, Awaited<ReturnType<typeof measure>>> = {};
for (const b of values.backends!.split(",")) {
  if (b !== "node" && b !== "web") throw new Error(`unknown backend ${b}`);
  results[b] = await measure(b);
}
const report = {
  model: {
    config: "bench/bench-moe.config.json",
    total_params: counts.total,
    active_params_per_token: Math.round(counts.active),
    active_fraction: +(counts.active / counts.total).toFixed(3),
    routed_experts: cfg.routedExperts,
  },
  threads,
  prefill_tokens: prefillLen,
  decode_tokens: decodeLen,
  read_bandwidth_gb_per_s: +bandwidth.toFixed(1),
  active_bytes_per_token: Math.round(activeBytes),
  roofline_decode_tokens_per_s_batch1: +roofline.toFixed(1),
  backends: results,
  ...(results.node && results.web
    ? { web_over_node_decode: +(results.web.decode_tokens_per_s_batch1 / results.node.decode_tokens_per_s_batch1).toFixed(3),
        web_over_node_prefill: +(results.web.prefill_tokens_per_s / results.node.prefill_tokens_per_s).toFixed(3) }
    : {}),
};
console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
process.exit(0);
