import type { StepReport } from "../scheduler/scheduler.js";
import type { LatencyObserver } from "./generation.js";

/** How a generation ended; its HTTP status cannot say, as a 200 head goes out before the end. */
export type GenerationOutcome = "completed" | "failed" | "cancelled";

/** Upper bounds (seconds) for latencies from a few milliseconds (a decode step) to minutes (a long answer). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640];

/** A Prometheus histogram: how many observations fell at or under each bound, their sum and count. */
export class Histogram {
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(readonly bounds: readonly number[]) {
    if (bounds.some((b, i) => i > 0 && b <= bounds[i - 1]!)) throw new RangeError("histogram bounds must increase");
    this.counts = new Array(bounds.length + 1).fill(0);
  }

  observe(v: number): void {
    let i = 0;
    while (i < this.bounds.length && v > this.bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  family(name: string, help: string): MetricFamily {
    let cumulative = 0;
    const buckets = this.counts.map((n, i) => {
      cumulative += n;
      return { suffix: "_bucket", labels: { le: i < this.bounds.length ? String(this.bounds[i]) : "+Inf" }, value: cumulative };
    });
    return { name, help, type: "histogram", samples: [...buckets, { suffix: "_sum", value: this.sum }, { suffix: "_count", value: this.count }] };
  }
}

/**
 * Request, token and latency figures for `/load` and `/metrics`, plus a sliding-window output rate. Latencies
 * (time to first token, between tokens, whole request, steps) are histograms, so a dashboard reads percentiles
 * across pods and an SLO alert sees a slow tail that a mean hides.
 */
export class PodMetrics {
  readonly requests = new Map<string, number>();
  readonly generations = new Map<GenerationOutcome, number>();
  activeRequests = 0;
  private readonly window: { t: number; n: number }[] = [];
  private readonly timeToFirstToken = new Histogram(LATENCY_BUCKETS);
  private readonly interTokenLatency = new Histogram(LATENCY_BUCKETS);
  private readonly requestDuration = new Histogram(LATENCY_BUCKETS);
  private readonly stepDuration = new Histogram(LATENCY_BUCKETS);
  private readonly forwardDuration = new Histogram(LATENCY_BUCKETS);
  private readonly stepTokens = new Histogram([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]);
  /** What generations report (see `Generation`). */
  readonly latency: LatencyObserver = {
    firstToken: (s) => this.timeToFirstToken.observe(s),
    interToken: (s) => this.interTokenLatency.observe(s),
    completed: (s) => this.requestDuration.observe(s),
  };

  recordStep(r: StepReport, now = Date.now()): void {
    this.recordSampled(r.sampled, now);
    this.stepDuration.observe(r.seconds);
    this.forwardDuration.observe(r.forwardSeconds);
    this.stepTokens.observe(r.tokens);
  }

  latencyFamilies(): MetricFamily[] {
    return [
      this.timeToFirstToken.family("pod_time_to_first_token_seconds", "From a generation request's arrival to its first token (any choice)."),
      this.interTokenLatency.family("pod_inter_token_latency_seconds", "Between two consecutive tokens of one choice."),
      this.requestDuration.family("pod_request_duration_seconds", "From a generation request's arrival to its last choice's end, for completed ones."),
      this.stepDuration.family("pod_step_duration_seconds", "One scheduler step: batch assembly, the model's forward pass, sampling and delivery."),
      this.forwardDuration.family("pod_step_forward_seconds", "The model's forward pass of one step."),
      this.stepTokens.family("pod_step_tokens", "Tokens one step computed (decode tokens and prefill chunks): how full batches run."),
    ];
  }

  countRequest(route: string, status: number): void {
    const k = `${route}|${status}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  countGeneration(outcome: GenerationOutcome): void {
    this.generations.set(outcome, (this.generations.get(outcome) ?? 0) + 1);
  }

  private recordSampled(n: number, now = Date.now()): void {
    if (n > 0) this.window.push({ t: now, n });
    while (this.window.length && this.window[0]!.t < now - 10_000) this.window.shift();
  }

  /** Output tokens per second over the last 10 s. */
  tokensPerSecond(now = Date.now()): number {
    this.recordSampled(0, now);
    if (this.window.length === 0) return 0;
    const total = this.window.reduce((a, w) => a + w.n, 0);
    const span = Math.max(1, now - this.window[0]!.t) / 1000;
    return total / Math.max(span, 1);
  }
}

export interface MetricFamily {
  name: string;
  help: string;
  type: "gauge" | "counter" | "histogram";
  /** `suffix` (histograms: `_bucket`, `_sum`, `_count`) follows the family's name. */
  samples: { suffix?: string; labels?: Record<string, string | number>; value: number }[];
}

/** The process's memory and CPU, under the names Prometheus' Node.js clients use (a leak shows here first). */
export function processMetrics(): MetricFamily[] {
  const m = process.memoryUsage();
  const cpu = process.cpuUsage();
  return [
    single("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", m.rss),
    single("nodejs_heap_size_used_bytes", "JavaScript heap in use, in bytes.", "gauge", m.heapUsed),
    single("nodejs_heap_size_total_bytes", "JavaScript heap reserved, in bytes.", "gauge", m.heapTotal),
    single("nodejs_external_memory_bytes", "Memory of C++ objects bound to JavaScript objects, in bytes.", "gauge", m.external),
    single("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", "counter", (cpu.user + cpu.system) / 1e6),
  ];
}

/**
 * Expert load for Prometheus, in series bounded by the expert count, not layers × experts (DeepSeek-V3: 256
 * instead of ~15k per pod): tokens per expert summed over the MoE layers, and per layer how far its busiest
 * expert is above the mean (the EPLB signal; 1 = balanced). `/load` keeps the full per-layer table.
 */
export function expertMetrics(load: readonly Float64Array[], moeLayers: readonly number[]): MetricFamily[] {
  const experts = load[moeLayers[0] ?? 0]?.length ?? 0;
  const total = new Float64Array(experts);
  const imbalance: MetricFamily["samples"] = [];
  for (const layer of moeLayers) {
    const row = load[layer]!;
    let sum = 0;
    let max = 0;
    row.forEach((v, e) => {
      total[e]! += v;
      sum += v;
      max = Math.max(max, v);
    });
    imbalance.push({ labels: { layer }, value: sum > 0 ? (max * row.length) / sum : 1 });
  }
  return [
    { name: "pod_expert_tokens_total", help: "Tokens routed to each expert, over all MoE layers (per layer: GET /load).", type: "counter", samples: Array.from(total, (value, expert) => ({ labels: { expert }, value })) },
    { name: "pod_expert_load_imbalance", help: "Per MoE layer: its busiest expert's tokens over the mean per expert (1 = balanced).", type: "gauge", samples: imbalance },
  ];
}

/** A label value as the text format writes it: backslash, double quote and line feed escaped. */
function escapeLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (ch) => (ch === "\n" ? "\\n" : `\\${ch}`));
}

/** A family of one unlabelled sample. */
export function single(name: string, help: string, type: "gauge" | "counter", value: number): MetricFamily {
  return { name, help, type, samples: [{ value }] };
}

/** Prometheus text exposition. */
export function prometheus(lines: MetricFamily[]): string {
  const out: string[] = [];
  for (const m of lines) {
    out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    for (const s of m.samples) {
      const labels = s.labels ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(",")}}` : "";
      out.push(`${m.name}${s.suffix ?? ""}${labels} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return out.join("\n") + "\n";
}
