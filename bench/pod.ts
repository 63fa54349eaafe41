import { availableParallelism, cpus, getPriority, setPriority } from "node:os";
import { parseArgs } from "node:util";
import { EventSourceParserStream } from "eventsource-parser/stream";
import { startPod, type PodProcess } from "../scripts/pod-process.js";
import { Rng } from "../gpu-backend/engine/rng.js";
import { decodeStepParameters } from "../gpu-backend/engine/tensor-names.js";
import { usableCpuCount } from "../gpu-backend/engine/kernels/host-cpus.js";
import { benchModelConfig, ensureBenchModel } from "./bench-model.js";

/**
 * `npm run -s bench:pod -- --json [--max-tokens 96] [--prompt-tokens 32] [--ep 1,2] [--threads N] [--rounds 3] [--client-nice 19]`
 * Output tokens/s (with TTFT, time per output token, and the pod's mean step and forward pass) of a real pod
 * on the benchmark model at 1, 8, 32 and 64 concurrent streams, with each `--ep` (default 1 and 2, one rank per
 * core on the 2-core reference machine); the same at 32 with the per-token expert loop (grouping disabled) for
 * each; and time to first token for a 2k-token shared prefix, cached vs uncached.
 * The 1- and 32-stream figures are medians of `--rounds` interleaved rounds (see `measureEp`).
 * `--threads` is passed to the pods (their pools' size; without it, pods use the CPUs they can keep busy).
 * The client (this process) drives the streams at `--client-nice` (default 19, the lowest priority) once the pods
 * run: where it shares the pods' cores, the events it handles would otherwise preempt their step's threads
 * (2-core VM, 32 streams: a pod's forward pass took 66–69 → 58 ms a step), which no remote client does; 0
 * measures it at theirs.
 * `ratios.weight_read_bound_c32_over_c1` is what c32 ÷ c1 would be if every decode step took exactly the time to
 * stream the weights it reads (`decodeStepParameters`): a step of 32 tokens reads the experts any of them picks.
 */
const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    "max-tokens": { type: "string", default: "96" },
    "prompt-tokens": { type: "string", default: "32" },
    concurrency: { type: "string", default: "1,8,32,64" },
    ep: { type: "string", default: "1,2" },
    threads: { type: "string" },
    rounds: { type: "string", default: "3" },
    "client-nice": { type: "string", default: "19" },
  },
});
const maxTokens = Number(values["max-tokens"]);
const promptTokens = Number(values["prompt-tokens"]);
const clientNice = Number(values["client-nice"]);
const MODEL = "bench-moe";
const cfg = benchModelConfig();
const dir = ensureBenchModel();
const rng = new Rng(17);
const randomPrompt = (n: number) => Array.from({ length: n }, () => 3 + Math.floor(rng.uniform() * 16000));

interface StreamResult {
  ttftMs: number;
  /** Mean time between its tokens after the first (TPOT); NaN with fewer than two. */
  tpotMs: number;
  tokens: number;
}

/** One streamed completion: its TTFT, TPOT, and completion tokens as its usage chunk counts them. */
async function stream(pod: PodProcess, prompt: number[], max: number, tenant = "bench"): Promise<StreamResult> {
  const t0 = performance.now();
  const res = await fetch(`${pod.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-tenant-id": tenant },
    body: JSON.stringify({ model: MODEL, prompt, max_tokens: max, temperature: 0.8, seed: 1, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`pod answered ${res.status}: ${await res.text()}`);
  let ttft = -1;
  let last = 0;
  let usage = 0;
  // Comments (keepalives) are not events, so every event but `[DONE]` is a token chunk or the usage chunk.
  const events = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
  for (let r = await events.read(); !r.done; r = await events.read()) {
    const data = r.value.data;
    if (data === "[DONE]") continue;
    last = performance.now() - t0;
    if (ttft < 0) ttft = last;
    const obj = JSON.parse(data) as { usage?: { completion_tokens: number } | null; error?: unknown };
    if (obj.error) throw new Error(JSON.stringify(obj.error));
    if (obj.usage) usage = obj.usage.completion_tokens;
  }
  // The last event is the usage chunk, sent with the last token.
  return { ttftMs: ttft, tpotMs: usage > 1 ? (last - ttft) / (usage - 1) : NaN, tokens: usage };
}

/**
 * Output tokens/s of the whole run (prefill included), and per stream: TTFT and time per output token after it;
 * then the pod's own view of the run's steps (prefill and decode alike, from its `/metrics` histograms): how
 * many, their mean duration, and the model's forward pass within it (the rest is the pod's scheduling,
 * sampling and delivery).
 */
type Figures = { tokens_per_s: number; ttft_p50_ms: number; tpot_p50_ms: number; steps: number; step_mean_ms: number; forward_mean_ms: number };

/** The pod's step histograms' running totals. */
async function stepTotals(pod: PodProcess) {
  const text = await (await fetch(`${pod.url}/metrics`)).text();
  const value = (series: string) => Number(new RegExp(`^${series} (\\S+)$`, "m").exec(text)?.[1]);
  return { steps: value("pod_step_duration_seconds_count"), step: value("pod_step_duration_seconds_sum"), forward: value("pod_step_forward_seconds_sum") };
}

async function throughput(pod: PodProcess, concurrency: number): Promise<Figures> {
  const before = await stepTotals(pod);
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: concurrency }, () => stream(pod, randomPrompt(promptTokens), maxTokens)));
  const seconds = (performance.now() - t0) / 1000;
  const after = await stepTotals(pod);
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  const p50 = (xs: number[]) => +[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(1);
  const steps = after.steps - before.steps;
  return {
    tokens_per_s: +(tokens / seconds).toFixed(1),
    ttft_p50_ms: p50(results.map((r) => r.ttftMs)),
    tpot_p50_ms: p50(results.map((r) => r.tpotMs)),
    steps,
    step_mean_ms: +((1000 * (after.step - before.step)) / steps).toFixed(1),
    forward_mean_ms: +((1000 * (after.forward - before.forward)) / steps).toFixed(1),
  };
}

async function startBenchPod(args: string[]): Promise<PodProcess> {
  const pod = await startPod(["--model", dir, "--served-model-name", MODEL, "--max-running", "64", ...args], {}, 600_000);
  await stream(pod, randomPrompt(16), 4); // warm-up
  return pod;
}

const levels = values.concurrency!.split(",").map(Number);
const rounds = Number(values.rounds);
const podArgs = values.threads ? ["--threads", values.threads] : [];
const log = (s: string) => console.error(`[bench:pod] ${s}`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** The round whose tokens/s is the median (its TTFT with it). */
const medianFigures = (xs: Figures[]) => {
  const m = median(xs.map((f) => f.tokens_per_s));
  return xs.reduce((a, f) => (Math.abs(f.tokens_per_s - m) < Math.abs(a.tokens_per_s - m) ? f : a));
};

/** 2k-token shared prefix: first sight (uncached) vs a second request sharing it (cached), per fresh prefix. */
async function prefixTtft(pod: PodProcess) {
  const cold: number[] = [];
  const warm: number[] = [];
  for (let trial = 0; trial < 3; trial++) {
    const p = randomPrompt(2048);
    cold.push((await stream(pod, [...p, ...randomPrompt(8)], 1)).ttftMs);
    warm.push((await stream(pod, [...p, ...randomPrompt(8)], 1)).ttftMs);
  }
  return { ttft_uncached_ms: +median(cold).toFixed(1), ttft_cached_ms: +median(warm).toFixed(1), cached_over_uncached: +(median(warm) / median(cold)).toFixed(3) };
}

/**
 * One `--ep` setting on its grouped and per-token pods (every pod runs throughout; an idle pod uses no CPU). The
 * figures behind the ratios (1 and 32 streams grouped, 32 per-token) are measured in `rounds` interleaved
 * rounds, so a host whose speed drifts over minutes (shared VMs) skews numerator and denominator alike;
 * each ratio is the median of its per-round ratios.
 */
async function measureEp(n: number, { grouped, perToken }: EpPods, withPrefix: boolean) {
  const once: Record<string, unknown> = {};
  for (const c of levels.filter((c) => c !== 1 && c !== 32)) {
    once[`c${c}`] = await throughput(grouped, c);
    log(`--ep ${n} grouped c=${c}: ${JSON.stringify(once[`c${c}`])}`);
  }
  const r: { c1: Figures[]; c32: Figures[]; perToken: Figures[] } = { c1: [], c32: [], perToken: [] };
  for (let k = 0; k < rounds; k++) {
    r.c1.push(await throughput(grouped, 1));
    r.c32.push(await throughput(grouped, 32));
    r.perToken.push(await throughput(perToken, 32));
    log(`--ep ${n} round ${k + 1}: grouped c=1 ${JSON.stringify(r.c1[k])}, c=32 ${JSON.stringify(r.c32[k])}; per-token c=32 ${JSON.stringify(r.perToken[k])}`);
  }
  const perRound = r.c32.map((f, k) => ({ c32_over_c1: f.tokens_per_s / r.c1[k]!.tokens_per_s, grouped_over_per_token_c32: f.tokens_per_s / r.perToken[k]!.tokens_per_s }));
  const figures = {
    grouped: Object.fromEntries(
      levels.map((c) => [`c${c}`, c === 1 ? medianFigures(r.c1) : c === 32 ? medianFigures(r.c32) : once[`c${c}`]]),
    ) as Record<string, unknown>,
    per_token_expert_loop: { c32: medianFigures(r.perToken) },
    ratios: {
      c32_over_c1: +median(perRound.map((x) => x.c32_over_c1)).toFixed(2),
      grouped_over_per_token_c32: +median(perRound.map((x) => x.grouped_over_per_token_c32)).toFixed(2),
      rounds: perRound.map((x) => ({ c32_over_c1: +x.c32_over_c1.toFixed(2), grouped_over_per_token_c32: +x.grouped_over_per_token_c32.toFixed(2) })),
    },
  };
  if (withPrefix) {
    figures.grouped.prefix_2k = await prefixTtft(grouped);
    log(`--ep ${n} prefix: ${JSON.stringify(figures.grouped.prefix_2k)}`);
  }
  return figures;
}

interface EpPods {
  grouped: PodProcess;
  perToken: PodProcess;
}

// --ep 1: experts in the pod's main thread; --ep N: N ranks, rank 0 in the main thread, the others on workers.
// Every pod starts before the client lowers its priority, since processes inherit it and cannot raise it back.
const eps = values.ep!.split(",").map(Number);
const pods: EpPods[] = [];
const runs: Record<string, Awaited<ReturnType<typeof measureEp>>> = {};
try {
  for (const n of eps) {
    const args = ["--ep", String(n), ...podArgs];
    pods.push({ grouped: await startBenchPod(args), perToken: await startBenchPod(["--no-expert-grouping", ...args]) });
  }
  try {
    setPriority(clientNice);
  } catch (e) {
    // Raising a priority needs privileges: a client started lower stays where it is (the report says where).
    log(`client priority stays ${getPriority()}: ${(e as Error).message}`);
  }
  for (const [i, n] of eps.entries()) runs[`ep${n}`] = await measureEp(n, pods[i]!, i === 0);
} finally {
  for (const p of pods) await Promise.all([p.grouped.stop("SIGKILL"), p.perToken.stop("SIGKILL")]);
}

const tps = (r: Record<string, unknown>, c: number) => (r[`c${c}`] as Figures | undefined)?.tokens_per_s ?? NaN;
const [first, ...others] = Object.keys(runs);
const report = {
  model: "bench/bench-moe.config.json (204.5M params, 64 experts top-6)",
  // Figures from different hosts are compared (the 2-core reference VM, larger hosts): each report names its own.
  host: { cpus: availableParallelism(), cpu: cpus()[0]?.model ?? "unknown" },
  prompt_tokens: promptTokens,
  max_tokens: maxTokens,
  rounds,
  client_nice: getPriority(),
  threads: values.threads ? Number(values.threads) : usableCpuCount(), // the pods' default is this process's count
  ...Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, { grouped: r.grouped, per_token_expert_loop: r.per_token_expert_loop }])),
  ratios: {
    ...Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, r.ratios])),
    ...Object.fromEntries(others.map((k) => [`${k}_over_${first}`, Object.fromEntries(levels.map((c) => [`c${c}`, +(tps(runs[k]!.grouped, c) / tps(runs[first!]!.grouped, c)).toFixed(2)]))])),
    weight_read_bound_c32_over_c1: +((32 * decodeStepParameters(cfg, 1)) / decodeStepParameters(cfg, 32)).toFixed(2),
    prefix_cached_over_uncached_ttft: (runs[first!]!.grouped.prefix_2k as { cached_over_uncached: number }).cached_over_uncached,
  },
};
console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
process.exit(0);
