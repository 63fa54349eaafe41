import autocannon from "autocannon";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { affinityKey, planRoute } from "../src/routing/plan.js";
import type { PodHealth, Registry } from "../src/routing/registry.js";
import { startStack } from "../scripts/stack.js";
import { startScriptedUpstream } from "../test/support/scripted-upstream.js";

/**
 * `npm run -s bench:gateway -- --json [--duration 8]`
 * The gateway's added latency and throughput: the same OpenAI-compatible upstream (an instant echo model)
 * is loaded directly and through the gateway (wrangler dev / workerd, D1-backed API keys, every feature on),
 * at 1 and 32 concurrent connections.
 */
const { values } = parseArgs({ options: { json: { type: "boolean", default: false }, duration: { type: "string", default: "8" } } });
const duration = Number(values.duration);

const upstream = await startScriptedUpstream();
const persist = mkdtempSync(join(tmpdir(), "bench-gw-"));
const stack = await startStack({
  gatewayPort: 0,
  persistDir: persist,
  modelDir: "",
  modelId: "unused",
  pods: [],
  extraModels: [{ id: "test-echo", upstreams: [upstream.url] }],
});

const body = JSON.stringify({ model: "test-echo", messages: [{ role: "user", content: "measure the gateway overhead please" }], max_tokens: 16 });

// A second tenant whose limits never bind: its requests go through the limiter object, the demo's do not.
const adminHeaders = { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/json" };
const limitedTenant = (await (await fetch(`${stack.gatewayUrl}/admin/tenants`, { method: "POST", headers: adminHeaders, body: JSON.stringify({ name: "bench-limited", limits: { rpm: 10_000_000, tpm: 1_000_000_000, max_concurrent: 100_000 } }) })).json()) as { id: string };
const limitedKey = ((await (await fetch(`${stack.gatewayUrl}/admin/tenants/${limitedTenant.id}/keys`, { method: "POST", headers: adminHeaders, body: "{}" })).json()) as { key: string }).key;

async function load(url: string, connections: number, key: string | null) {
  const r = await autocannon({
    url: `${url}/v1/chat/completions`,
    method: "POST",
    connections,
    duration,
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body,
  });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { p50_ms: r.latency.p50, p99_ms: r.latency.p99, rps: Math.round(r.requests.average), requests: r.requests.total };
}

/**
 * The routing decision alone (registry + health view → ordered candidates), as the edge runs it per request:
 * 3 regions, 12 pods, a 1k-character prompt prefix.
 */
function routingDecision(): { per_decision_us: number } {
  const regions = [
    { id: "eu-west", name: "", latitude: 50.11, longitude: 8.68 },
    { id: "us-east", name: "", latitude: 38.95, longitude: -77.45 },
    { id: "ap-south", name: "", latitude: 1.35, longitude: 103.82 },
  ];
  const reg: Registry = {
    regions,
    pods: regions.flatMap((r) => [0, 1, 2, 3].map((i) => ({ id: `${r.id}-${i}`, region: r.id, url: `http://${r.id}-${i}`, models: ["m"], capacity: 64, kind: "moe-pod" as const, enabled: true }))),
  };
  const health = new Map<string, PodHealth>(reg.pods.map((p) => [p.id, { id: p.id, healthy: true, running: 10, waiting: 0, checkedAt: 0, breaker: "closed" }]));
  const messages = [{ role: "system", content: "You are a helpful assistant. ".repeat(40) }, { role: "user", content: "hi" }];
  const n = 20_000;
  const t = performance.now();
  for (let i = 0; i < n; i++) planRoute(reg, health, { model: "m", affinityKey: affinityKey(`t${i % 50}`, "m", messages), location: { latitude: 48.86, longitude: 2.35 } });
  return { per_decision_us: +(((performance.now() - t) / n) * 1000).toFixed(2) };
}

const results: Record<string, unknown> = { routing_decision: routingDecision() };
try {
  // Warm both paths (isolate start, D1 key lookup cache) before measuring.
  await load(upstream.url, 4, null);
  await load(stack.gatewayUrl, 4, stack.demoKey);
  await load(stack.gatewayUrl, 4, limitedKey);
  for (const c of [1, 32]) {
    const direct = await load(upstream.url, c, null);
    const gateway = await load(stack.gatewayUrl, c, stack.demoKey);
    const limited = await load(stack.gatewayUrl, c, limitedKey);
    results[`c${c}`] = {
      direct,
      gateway,
      gateway_with_limits: limited,
      added_p50_ms: +(gateway.p50_ms - direct.p50_ms).toFixed(2),
      added_p99_ms: +(gateway.p99_ms - direct.p99_ms).toFixed(2),
      rps_ratio_gateway_over_direct: +(gateway.rps / direct.rps).toFixed(3),
      limiter_added_p50_ms: +(limited.p50_ms - gateway.p50_ms).toFixed(2),
      limiter_added_p99_ms: +(limited.p99_ms - gateway.p99_ms).toFixed(2),
    };
  }
} finally {
  await stack.stop();
  await upstream.close();
  rmSync(persist, { recursive: true, force: true });
}
const report = {
  duration_s_per_run: duration,
  gateway: "wrangler dev (workerd): auth (D1 + edge cache), routing; gateway_with_limits adds the tenant's rate-limit object",
  upstream: "instant OpenAI-compatible echo",
  ...results,
};
console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
process.exit(0);
