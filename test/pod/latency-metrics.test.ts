import { describe, expect, it } from "vitest";
import { Histogram, PodMetrics, prometheus, single } from "../../gpu-backend/server/metrics.js";

describe("latency histograms in Prometheus", () => {
  it("counts each observation under every bound at or above it, with the sum and the count", () => {
    const h = new Histogram([0.1, 1, 10]);
    for (const v of [0.05, 0.1, 0.5, 3, 50]) h.observe(v);
    const text = prometheus([h.family("x_seconds", "An example.")]);
    expect(text.split("\n").slice(0, 8)).toEqual([
      "# HELP x_seconds An example.",
      "# TYPE x_seconds histogram",
      'x_seconds_bucket{le="0.1"} 2', // a value equal to a bound falls in its bucket
      'x_seconds_bucket{le="1"} 3',
      'x_seconds_bucket{le="10"} 4',
      'x_seconds_bucket{le="+Inf"} 5',
      "x_seconds_sum 53.65",
      "x_seconds_count 5",
    ]);
  });

  it("refuses bounds that do not increase", () => {
    expect(() => new Histogram([1, 1])).toThrow(RangeError);
    expect(() => new Histogram([2, 1])).toThrow(RangeError);
  });

  it("records each step's duration, forward pass and tokens, and the output rate", () => {
    const m = new PodMetrics();
    m.recordStep({ sampled: 32, tokens: 32, seconds: 0.07, forwardSeconds: 0.06 }, 1_000);
    m.recordStep({ sampled: 16, tokens: 512, seconds: 0.3, forwardSeconds: 0.28 }, 2_000);
    const text = prometheus(m.latencyFamilies());
    expect(text).toMatch(/^pod_step_duration_seconds_bucket\{le="0\.08"\} 1$/m);
    expect(text).toMatch(/^pod_step_duration_seconds_count 2$/m);
    expect(text).toMatch(/^pod_step_forward_seconds_bucket\{le="0\.06"\} 1$/m);
    expect(text).toMatch(/^pod_step_tokens_bucket\{le="32"\} 1$/m);
    expect(text).toMatch(/^pod_step_tokens_sum 544$/m);
    expect(m.tokensPerSecond(2_000)).toBe(48);
  });

  it("escapes label values as the text format asks, and writes a one-sample family", () => {
    const text = prometheus([
      { name: "x_total", help: "Labels.", type: "counter", samples: [{ labels: { route: 'a"b\\c\nd' }, value: 1 }] },
      single("y", "One.", "gauge", 2),
    ]);
    expect(text.split("\n")).toEqual(["# HELP x_total Labels.", "# TYPE x_total counter", 'x_total{route="a\\"b\\\\c\\nd"} 1', "# HELP y One.", "# TYPE y gauge", "y 2", ""]);
  });
});
