import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startStack, type Stack } from "../../scripts/stack.js";
import { eventually } from "../support/eventually.js";

/**
 * Two regions, three real pods, the gateway under wrangler dev. Clients are "in" Paris (the local request.cf),
 * so eu-west is their nearest region.
 */
const MODEL = "deepseek-v3-tiny";
let stack: Stack;
let persist: string;
const logs: string[] = [];

beforeAll(async () => {
  persist = mkdtempSync(join(tmpdir(), "routing-"));
  stack = await startStack({
    gatewayPort: 0,
    persistDir: persist,
    modelDir: inject("tinyModelDir"),
    modelId: MODEL,
    regions: [
      { id: "eu-west", name: "Frankfurt", latitude: 50.11, longitude: 8.68 },
      { id: "us-east", name: "Virginia", latitude: 38.95, longitude: -77.45 },
    ],
    pods: [
      { id: "pod-eu-1", region: "eu-west", port: 0 },
      { id: "pod-eu-2", region: "eu-west", port: 0 },
      { id: "pod-us-1", region: "us-east", port: 0 },
    ],
    clientLocation: { latitude: 48.86, longitude: 2.35 },
    vars: { HEALTH_INTERVAL_MS: "300", HEALTH_SNAPSHOT_MS: "300", REGISTRY_CACHE_MS: "1000" },
    log: (l) => logs.push(l),
  });
});

afterAll(async () => {
  await stack?.stop();
  rmSync(persist, { recursive: true, force: true });
});

async function chat(opts: { key?: string; region?: string; content?: string; maxTokens?: number; system?: string } = {}) {
  const res = await fetch(`${stack.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${opts.key ?? stack.demoKey}`,
      "content-type": "application/json",
      // These requests are deterministic; the edge cache would answer repeats without routing them.
      "cache-control": "no-store",
      ...(opts.region ? { "x-region": opts.region } : {}),
    },
    body: JSON.stringify({
      model: MODEL,
      messages: [...(opts.system ? [{ role: "system", content: opts.system }] : []), { role: "user", content: opts.content ?? "Hi" }],
      max_tokens: opts.maxTokens ?? 2,
      temperature: 0,
    }),
  });
  const body = (await res.json()) as { usage?: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } } };
  return { status: res.status, pod: res.headers.get("x-backend-pod"), region: res.headers.get("x-backend-region"), body };
}


describe("regional routing and resilience", () => {
  it("serves a client from its nearest region, or the region it names", async () => {
    expect((await chat()).region).toBe("eu-west");
    expect((await chat({ region: "us-east" })).pod).toBe("pod-us-1");
  });

  it("the same long prefix from one tenant lands on one pod and hits its cache; another tenant's does not", async () => {
    const system = "You are the support assistant of the edge gateway. Answer briefly and kindly. ".repeat(50);
    const a1 = await chat({ system, content: "first" });
    const a2 = await chat({ system, content: "second" });
    expect(a1.status).toBe(200);
    expect(a2.pod).toBe(a1.pod);
    expect(a1.body.usage!.prompt_tokens).toBeGreaterThan(700);
    expect(a2.body.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThan(600);
    const other = (await stack.admin("POST", "/tenants", { name: "other" })).json as { id: string };
    const otherKey = ((await stack.admin("POST", `/tenants/${other.id}/keys`, {})).json as { key: string }).key;
    const b = await chat({ key: otherKey, system, content: "second" });
    expect(b.status).toBe(200);
    expect(b.body.usage!.prompt_tokens_details!.cached_tokens).toBe(0);
  });

  it("refuses unsigned or tampered requests straight to a pod", async () => {
    const pod = stack.pods.get("pod-us-1")!;
    const body = JSON.stringify({ model: MODEL, prompt: "x", max_tokens: 1 });
    const unsigned = await fetch(`${pod.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(unsigned.status).toBe(401);
    const forged = await fetch(`${pod.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-edge-timestamp": String(Math.floor(Date.now() / 1000)), "x-edge-signature": "v1=" + "ab".repeat(32), "x-tenant-id": "t", "x-request-id": "r" },
      body,
    });
    expect(forged.status).toBe(401);
    expect(((await forged.json()) as { error: { code: string } }).error.code).toBe("invalid_edge_signature");
  });

  it("a pod killed mid-stream: the client gets an error event, the stream ends, delivered usage is recorded", async () => {
    const res = await fetch(`${stack.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.demoKey}`, "content-type": "application/json", "x-region": "us-east" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "a long answer please" }], max_tokens: 3000, stream: true, ignore_eos: true }),
    });
    expect(res.headers.get("x-backend-pod")).toBe("pod-us-1");
    const requestId = res.headers.get("x-request-id")!;
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    while ((text.match(/"content"/g) ?? []).length < 5) text += decoder.decode((await reader.read()).value);
    await stack.killPod("pod-us-1");
    try {
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value);
    } finally {
      await stack.restartPod("pod-us-1");
    }
    const events = text.split("\n\n").filter((e) => e.startsWith("data: "));
    const last = JSON.parse(events.at(-1)!.slice(6));
    expect(last.error.code).toBe("upstream_stream_error");
    const record = await eventually(5000, async () => logs.find((l) => l.includes(requestId) && l.includes('"msg":"completion"')), (l) => !!l);
    const rec = JSON.parse(record!.slice(record!.indexOf("{"), record!.lastIndexOf("}") + 1));
    expect(rec.status).toBe("failed");
    expect(rec.delivered_chunks).toBeGreaterThanOrEqual(4);
  });

  it("a pod killed in the middle of a non-streaming answer: the client gets the whole answer from another pod", async () => {
    const answer = fetch(`${stack.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.demoKey}`, "content-type": "application/json", "cache-control": "no-store" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "a long answer, not streamed" }], max_tokens: 1500, temperature: 0, ignore_eos: true }),
    });
    // Whichever eu-west pod took it is generating: kill that one.
    const busy = async () => {
      for (const id of ["pod-eu-1", "pod-eu-2"]) {
        const load = (await (await fetch(`${stack.pods.get(id)!.url}/load`)).json()) as { running: number };
        if (load.running > 0) return id;
      }
      return null;
    };
    const victim = await eventually(10_000, busy, (id) => id !== null, 20);
    expect(victim).not.toBeNull();
    await stack.killPod(victim!);
    try {
      const res = await answer;
      expect(res.status).toBe(200);
      const survivor = res.headers.get("x-backend-pod");
      expect(survivor).toMatch(/^pod-/);
      expect(survivor).not.toBe(victim);
      const body = (await res.json()) as { usage: { completion_tokens: number }; choices: { finish_reason: string }[] };
      expect(body.usage.completion_tokens).toBe(1500);
      expect(body.choices[0]!.finish_reason).toBe("length");
    } finally {
      await stack.restartPod(victim!);
    }
  });

  it("region A down → served by B with no failed request; A back → traffic returns", async () => {
    await stack.killPod("pod-eu-1");
    await stack.killPod("pod-eu-2");
    const during = [];
    for (let i = 0; i < 6; i++) during.push(await chat({ content: `during outage ${i}` }));
    expect(during.map((r) => r.status)).toEqual(during.map(() => 200));
    expect(new Set(during.map((r) => r.region))).toEqual(new Set(["us-east"]));
    await stack.restartPod("pod-eu-1");
    await stack.restartPod("pod-eu-2");
    const back = await eventually(30_000, () => chat({ content: "after" }), (r) => r.region === "eu-west", 200);
    expect(back.status).toBe(200);
    expect(back.region).toBe("eu-west");
  });
});
