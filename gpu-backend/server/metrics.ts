/** How a generation ended; its HTTP status cannot say, as a 200 head goes out before the end. */
export type GenerationOutcome = "completed" | "failed" | "cancelled";

/** Request and token counters for `/load` and `/metrics`, plus a sliding-window output rate. */
export class PodMetrics {
  readonly requests = new Map<string, number>();
  readonly generations = new Map<GenerationOutcome, number>();
  activeRequests = 0;
  private readonly window: { t: number; n: number }[] = [];

  countRequest(route: string, status: number): void {
    const k = `${route}|${status}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  countGeneration(outcome: GenerationOutcome): void {
    this.generations.set(outcome, (this.generations.get(outcome) ?? 0) + 1);
  }

  recordSampled(n: number, now = Date.now()): void {
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
  type: "gauge" | "counter";
  samples: { labels?: Record<string, string | number>; value: number }[];
}

/** The process's memory and CPU, under the names Prometheus' Node.js clients use (a leak shows here first). */
export function processMetrics(): MetricFamily[] {
  const m = process.memoryUsage();
  const cpu = process.cpuUsage();
  return [
    { name: "process_resident_memory_bytes", help: "Resident memory size in bytes.", type: "gauge", samples: [{ value: m.rss }] },
    { name: "nodejs_heap_size_used_bytes", help: "JavaScript heap in use, in bytes.", type: "gauge", samples: [{ value: m.heapUsed }] },
    { name: "nodejs_heap_size_total_bytes", help: "JavaScript heap reserved, in bytes.", type: "gauge", samples: [{ value: m.heapTotal }] },
    { name: "nodejs_external_memory_bytes", help: "Memory of C++ objects bound to JavaScript objects, in bytes.", type: "gauge", samples: [{ value: m.external }] },
    { name: "process_cpu_seconds_total", help: "User and system CPU time spent, in seconds.", type: "counter", samples: [{ value: (cpu.user + cpu.system) / 1e6 }] },
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

/** Prometheus text exposition. */
export function prometheus(lines: MetricFamily[]): string {
  const out: string[] = [];
  for (const m of lines) {
    out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`);
    for (const s of m.samples) {
      const labels = s.labels ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${String(v).replace(/["\\\n]/g, "_")}"`).join(",")}}` : "";
      out.push(`${m.name}${labels} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return out.join("\n") + "\n";
}
