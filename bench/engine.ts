import { parseArgs } from "node:util";
import { ContiguousLatentCache } from "../gpu-backend/engine/latent-cache.js";
import { DeepSeekModel } from "../gpu-backend/engine/model.js";
import { LatentStore, PagedLatentCache } from "../gpu-backend/kv/paged-cache.js";
import { parameterCounts } from "../gpu-backend/engine/tensor-names.js";
import { Rng } from "../gpu-backend/engine/rng.js";
import { benchModelConfig, ensureBenchModel } from "./bench-model.js";
import { measureReadBandwidth } from "./memory-bandwidth.js";

/**
 * `npm run -s bench:engine -- --json [--backends node,web] [--prefill 512] [--decode 128] [--long-context 2000] [--long-batch 32] [--long-prompts 1]`
 * Prefill tokens/s, batch-1 decode tokens/s and the batch-1 decode roofline (active bytes per token ÷ the
 * read bandwidth measured here) for each onnxruntime backend, on the benchmark model. Then, as the pod runs it:
 * `--long-batch` sequences decoding together, each after one of `--long-prompts` `--long-context`-token prompts
 * that its sequences share through the paged KV pool (system prompts, many conversations); 0 skips it.
 */
const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    backends: { type: "string", default: "node,web" },
    prefill: { type: "string", default: "512" },
    decode: { type: "string", default: "128" },
    threads: { type: "string", default: "2" },
    "long-context": { type: "string", default: "2000" },
    "long-batch": { type: "string", default: "32" },
    "long-prompts": { type: "string", default: "1" },
  },
});

const threads = Number(values.threads);
const prefillLen = Number(values.prefill);
const decodeLen = Number(values.decode);
const longContext = Number(values["long-context"]);
const longBatch = Number(values["long-batch"]);
const longPrompts = Number(values["long-prompts"]);
const cfg = benchModelConfig();
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
  const long = longBatch > 0 ? await longContextDecode(model) : null;
  await model.close();
  return {
    load_seconds: +loadSeconds.toFixed(1),
    prefill_tokens_per_s: +prefillTps.toFixed(1),
    decode_tokens_per_s_batch1: +decodeTps.toFixed(1),
    decode_fraction_of_roofline: +(decodeTps / roofline).toFixed(3),
    ...(long ? { long_context_decode: long } : {}),
  };
}

/**
 * `longBatch` sequences decoding at once, each behind `longContext` cached positions of one of `longPrompts`
 * prompts (round robin), whose blocks they share as prefix-cache hits do.
 */
async function longContextDecode(model: DeepSeekModel) {
  const bs = 16;
  const steps = 16;
  const shared = Math.ceil(longContext / bs);
  const own = Math.ceil((steps + 4) / bs) + 1;
  const store = new LatentStore(cfg.layers, longPrompts * shared + longBatch * own, bs, model.cacheWidth);
  const prefixBlocks: number[][] = [];
  for (let p = 0; p < longPrompts; p++) {
    const prefix = Array.from({ length: longContext }, () => 3 + Math.floor(rng.uniform() * (cfg.vocabSize - 3)));
    prefixBlocks.push(Array.from({ length: shared }, (_, b) => p * shared + b));
    const first = new PagedLatentCache(store, prefixBlocks[p]!);
    for (let at = 0; at < longContext; at += 256) await model.forward([{ tokens: prefix.slice(at, at + 256), past: at, cache: first, logits: "none" }]);
  }
  // Full blocks of a prefix are shared; a partial last one is copied into each sequence's own first block.
  const full = Math.floor(longContext / bs);
  const seqs = Array.from({ length: longBatch }, (_, i) => {
    const blocks = prefixBlocks[i % longPrompts]!;
    const mine = Array.from({ length: own }, (_, k) => longPrompts * shared + i * own + k);
    for (const b of mine) store.clear(b);
    if (full < shared) for (const rows of store.layers) rows.copyWithin(mine[0]! * bs * store.width, blocks[full]! * bs * store.width, (blocks[full]! + 1) * bs * store.width);
    return { cache: new PagedLatentCache(store, [...blocks.slice(0, full), ...mine]), past: longContext };
  });
  const times: number[] = [];
  for (let k = 0; k < steps + 4; k++) {
    const t = performance.now();
    await model.forward(seqs.map((s) => ({ tokens: [3 + Math.floor(rng.uniform() * (cfg.vocabSize - 3))], past: s.past, cache: s.cache, logits: "last" as const })));
    if (k >= 4) times.push(performance.now() - t);
    for (const s of seqs) s.past++;
  }
  const stepMs = times.sort((a, b) => a - b)[times.length >> 1]!;
  return { sequences: longBatch, prompts: longPrompts, cached_positions: longContext, step_ms_p50: +stepMs.toFixed(1), tokens_per_s: +((longBatch * 1000) / stepMs).toFixed(1) };
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
  ...(longBatch > 0 ? { long_context: { sequences: longBatch, prompts: longPrompts, cached_positions: longContext } } : {}),
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
