import { DeepSeekModel } from "../engine/model.js";
import { TextCodec } from "../engine/tokenizer.js";
import { OffThreadEncoder } from "../text/off-thread-encoder.js";
import { LocalExperts } from "../engine/experts.js";
import { ContiguousLatentCache } from "../engine/latent-cache.js";
import { Scheduler } from "../scheduler/scheduler.js";
import { createPodApp, type PodState } from "./app.js";
import { listen, loadingApp } from "./listener.js";
import { PodMetrics } from "./metrics.js";
import { missingNodeFlags } from "./node-flags.js";
import { parsePodOptions } from "./options.js";

/**
 * The GPU backend pod: `node --initial-heap-size=256 --max-semi-space-size=64 --import tsx gpu-backend/server/main.ts
 * --model DIR [--port 8100] [--ep N] …` (the heap flags: see `POD_NODE_FLAGS`).
 * Listens at once (answering "loading" until ready), loads the model, serves the OpenAI-compatible API, drains
 * gracefully on SIGTERM.
 */
async function main(): Promise<void> {
  const opts = parsePodOptions(process.argv.slice(2), process.env);
  const log = (msg: string, extra: Record<string, unknown> = {}) => console.log(JSON.stringify({ pod: opts.podId, msg, ...extra }));
  const state: PodState = { draining: false };
  const started = performance.now();
  const listener = await listen(opts.port, opts.host, loadingApp(opts.podId).fetch);
  const { server, port } = listener;
  log("loading", { port, model: opts.model, threads: opts.threads });
  const heapFlags = missingNodeFlags(process.execArgv);
  if (heapFlags.length > 0) log(`node was started without ${heapFlags.join(" and ")}: under load, garbage collections will stall steps (start it as the container image does)`);

  const model = await DeepSeekModel.load(opts.model, {
    backend: opts.backend,
    threads: opts.threads,
    pinThreads: opts.pinThreads,
    ...(opts.executionProviders ? { executionProviders: opts.executionProviders.split(",") } : {}),
    onProgress: (line) => log(line),
    experts: async ({ runtime, ckpt, config }) => {
      if (opts.ep > 1) {
        const { EpExperts } = await import("../experts/ep-experts.js");
        return EpExperts.start({ model: opts.model, config, ranks: opts.ep, backend: opts.backend, replicas: opts.epReplicas, rebalanceEvery: opts.epRebalanceEvery, grouped: opts.expertGrouping });
      }
      return LocalExperts.create(runtime, ckpt, config, { mode: opts.expertGrouping ? "grouped" : "per-token" });
    },
  });
  const codec = TextCodec.load(opts.model, model.config.eosTokenIds);
  const encoder = new OffThreadEncoder(codec, opts.model);
  encoder.start();
  await warmUp(model, opts.maxBatchTokens, opts.maxRunning);
  const scheduler = new Scheduler(model, {
    maxBatchTokens: opts.maxBatchTokens,
    maxRunning: opts.maxRunning,
    numBlocks: opts.kvBlocks,
    blockSize: opts.blockSize,
  });
  const metrics = new PodMetrics();
  scheduler.onStep = (r) => metrics.recordStep(r);
  scheduler.start();

  const { edgeSecrets } = opts;
  if (edgeSecrets.length === 0) log(`POD_EDGE_SECRET is not set: requests are not authenticated (${opts.allowUnsigned ? "--allow-unsigned" : "development only, loopback"})`);
  const app = createPodApp({ model, codec, encode: encoder.encode, encodeChat: encoder.encodeChat, scheduler, modelId: opts.servedModelName, podId: opts.podId, metrics, state, maxBodyBytes: opts.maxBodyBytes, maxWaiting: opts.maxWaiting, keepaliveMs: opts.keepaliveMs, edgeSecrets });
  listener.install(app.fetch);
  log("ready", { port, model: opts.servedModelName, backend: opts.backend, ep: opts.ep, kv_blocks: opts.kvBlocks, block_size: opts.blockSize, load_seconds: +((performance.now() - started) / 1000).toFixed(2) });

  // Graceful drain: stop admitting, let running and queued work finish, then exit.
  let draining = false;
  const drain = async (signal: string) => {
    if (draining) return;
    draining = true;
    state.draining = true;
    log("draining", { signal });
    const deadline = Date.now() + opts.drainTimeoutS * 1000;
    while ((!scheduler.idle || metrics.activeRequests > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await scheduler.stop();
    // Answers may still be on their way out (megabytes of JSON wait for a slow reader): the server closes once
    // their connections are done, or at the deadline. A keep-alive connection is closed as soon as it is idle.
    await new Promise<void>((r) => {
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const done = () => {
        clearInterval(sweep);
        r();
      };
      server.close(done);
      setTimeout(done, Math.max(0, deadline - Date.now())).unref();
    });
    await encoder.close();
    await model.close();
    log("stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void drain("SIGTERM"));
  process.on("SIGINT", () => void drain("SIGINT"));
}

/**
 * Full-budget steps before taking traffic, one per attention path: onnxruntime grows its memory arenas (and
 * the OS faults fresh pages in) on the first run of a larger shape, which would otherwise land on the first
 * users' time to first token. On the benchmark model a cold 512-token step of short prompts took 540–640 ms,
 * a warm one ~370 ms.
 */
async function warmUp(model: DeepSeekModel, maxBatchTokens: number, maxRunning: number): Promise<void> {
  const { layers, vocabSize, maxPositions } = model.config;
  const tokens = (n: number) => Array.from({ length: n }, (_, i) => i % vocabSize);
  // One long prompt (expanded attention).
  const long = Math.min(maxBatchTokens, maxPositions);
  await model.forward([{ tokens: tokens(long), past: 0, cache: new ContiguousLatentCache(layers, model.cacheWidth, long), logits: "last" }]);
  // Many short prompts (absorbed attention over chunks), then one decode token for each.
  const chunk = Math.min(32, maxPositions - 1);
  const caches = Array.from({ length: Math.max(1, Math.min(maxRunning, Math.floor(maxBatchTokens / chunk))) }, () => new ContiguousLatentCache(layers, model.cacheWidth, chunk + 1));
  await model.forward(caches.map((cache) => ({ tokens: tokens(chunk), past: 0, cache, logits: "last" as const })));
  await model.forward(caches.map((cache) => ({ tokens: [1], past: chunk, cache, logits: "last" as const })));
  model.expertLoad.forEach((row) => row.fill(0));
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
