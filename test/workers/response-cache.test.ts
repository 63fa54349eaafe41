import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { adminCall, authed, gw, newTenantKey } from "./helpers.js";
import { eventually } from "../support/eventually.js";

interface Recorded {
  body: Record<string, unknown>;
  headers: Record<string, string>;
  raw: string;
}
const seenUpstream = async (marker: string): Promise<Recorded[]> =>
  ((await (await fetch(`${env.UPSTREAM_URL}/_state`)).json()) as { requests: Recorded[] }).requests.filter((r) => r.raw.includes(marker));


const body = (marker: string, extra: Record<string, unknown> = {}) => ({ model: "test-echo", messages: [{ role: "user", content: `cache me ${marker}` }], temperature: 0, ...extra });
const events = async (res: Response) => (await res.text()).split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));

describe("edge response cache", () => {
  it("answers a repeated deterministic request from the cache, as JSON", async () => {
    const { key } = await newTenantKey();
    const m = crypto.randomUUID();
    const first = await gw("/v1/chat/completions", authed(key, body(m)));
    expect(first.headers.get("x-cache")).toBe("MISS");
    const a = (await first.json()) as { choices: { message: { content: string } }[]; usage: { prompt_tokens: number } };
    // Field order and explicit defaults do not change the key.
    const reordered = { temperature: 0, n: 1, top_p: 1, messages: [{ content: `cache me ${m}`, role: "user" }], model: "test-echo", user: "someone" };
    const second = await gw("/v1/chat/completions", authed(key, reordered));
    expect(second.headers.get("x-cache")).toBe("HIT");
    const b = (await second.json()) as { object: string; choices: { message: { content: string } }[]; usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number }; prompt_cache_hit_tokens: number } };
    expect(b.object).toBe("chat.completion");
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content);
    expect(b.usage.prompt_tokens_details.cached_tokens).toBe(a.usage.prompt_tokens);
    expect(b.usage.prompt_cache_hit_tokens).toBe(a.usage.prompt_tokens);
    expect(await seenUpstream(m)).toHaveLength(1);
  });

  it("replays a hit as a stream when stream: true, usage chunk included", async () => {
    const { key } = await newTenantKey();
    const m = crypto.randomUUID();
    const miss = await gw("/v1/chat/completions", authed(key, body(m, { stream: true })));
    const original = await events(miss);
    const hit = await gw("/v1/chat/completions", authed(key, body(m, { stream: true, stream_options: { include_usage: true } })));
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(hit.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const replay = await events(hit);
    expect(replay.at(-1)).toBe("[DONE]");
    const chunks = replay.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks.at(-1).usage.completion_tokens).toBeGreaterThan(0);
    expect(chunks.filter((c) => c.usage)).toHaveLength(1);
    const text = (evs: Record<string, { delta?: { content?: string } }[]>[]) => evs.map((c) => c.choices?.[0]?.delta?.content ?? "").join("");
    const originalChunks = original.slice(0, -1).map((e) => JSON.parse(e));
    expect(text(chunks)).toBe(text(originalChunks));
    // The same pieces as the original stream.
    expect(chunks.filter((c) => c.choices[0]?.delta?.content).length).toBe(originalChunks.filter((c: { choices: { delta?: { content?: string } }[] }) => c.choices[0]?.delta?.content).length);
    expect(await seenUpstream(m)).toHaveLength(1);
  });

  it("keeps logprobs: a JSON answer with them is replayed whole; a stream asking for them bypasses the cache", async () => {
    const { key } = await newTenantKey();
    const m = crypto.randomUUID();
    const logprobsOf = (b: { choices: { logprobs: { content: { logprob: number }[] } | null }[] }) => b.choices[0]!.logprobs?.content.map((e) => e.logprob);
    const want = [1, 2, 3].map((i) => -i / 8); // "cache me <marker>": three words
    // A stream's entry would keep text only, so a streamed request for logprobs neither writes nor reads one.
    const streamed = await gw("/v1/chat/completions", authed(key, body(m, { logprobs: true, stream: true })));
    expect(streamed.headers.get("x-cache")).toBe("BYPASS");
    const chunks = (await events(streamed)).filter((e) => e !== "[DONE]").map((e) => JSON.parse(e) as { choices: { logprobs: { content: { logprob: number }[] } | null }[] });
    expect(chunks.flatMap((ch) => ch.choices[0]?.logprobs?.content.map((e) => e.logprob) ?? [])).toEqual(want);
    for (const expected of ["MISS", "HIT"]) {
      const res = await gw("/v1/chat/completions", authed(key, body(m, { logprobs: true })));
      expect(res.headers.get("x-cache")).toBe(expected);
      expect(logprobsOf((await res.json()) as never)).toEqual(want);
    }
    const again = await gw("/v1/chat/completions", authed(key, body(m, { logprobs: true, stream: true })));
    expect(again.headers.get("x-cache")).toBe("BYPASS");
    await again.text();
    expect(await seenUpstream(m)).toHaveLength(3);
  });

  it("never gives tenant B tenant A's cached answer for an identical body", async () => {
    const a = await newTenantKey();
    const b = await newTenantKey();
    const m = crypto.randomUUID();
    await (await gw("/v1/chat/completions", authed(a.key, body(m)))).text();
    expect((await gw("/v1/chat/completions", authed(a.key, body(m)))).headers.get("x-cache")).toBe("HIT");
    const other = await gw("/v1/chat/completions", authed(b.key, body(m)));
    expect(other.headers.get("x-cache")).toBe("MISS");
    const seen = await seenUpstream(m);
    expect(seen.map((r) => r.headers["x-tenant-id"])).toEqual([a.tenant, b.tenant]);
  });

  it("no-store bypasses and does not write; no-cache skips the read but refreshes the entry", async () => {
    const { key } = await newTenantKey();
    const m = crypto.randomUUID();
    const noStore = await gw("/v1/chat/completions", authed(key, body(m), { "cache-control": "no-store" }));
    expect(noStore.headers.get("x-cache")).toBe("BYPASS");
    await noStore.text();
    expect((await gw("/v1/chat/completions", authed(key, body(m)))).headers.get("x-cache")).toBe("MISS");
    const noCache = await gw("/v1/chat/completions", authed(key, body(m), { "cache-control": "no-cache" }));
    expect(noCache.headers.get("x-cache")).toBe("MISS");
    await noCache.text();
    expect((await gw("/v1/chat/completions", authed(key, body(m)))).headers.get("x-cache")).toBe("HIT");
    expect(await seenUpstream(m)).toHaveLength(3);
  });

  it("never caches non-deterministic requests; a tenant can turn the cache off", async () => {
    const { key, tenant } = await newTenantKey();
    const m = crypto.randomUUID();
    for (let i = 0; i < 2; i++) {
      const r = await gw("/v1/chat/completions", authed(key, body(m, { temperature: 0.7 })));
      expect(r.headers.get("x-cache")).toBe("BYPASS");
      await r.text();
    }
    expect(await seenUpstream(m)).toHaveLength(2);
    const seeded = await gw("/v1/chat/completions", authed(key, body(`${m}-seed`, { temperature: 0.7, seed: 42 })));
    expect(seeded.headers.get("x-cache")).toBe("MISS"); // a fixed seed is deterministic
    await adminCall("PATCH", `/tenants/${tenant}`, { response_cache: { enabled: false, ttl_seconds: 60 } });
    const off = await gw("/v1/chat/completions", authed(key, body(`${m}-off`)));
    // The edge's key cache may still hold the old settings for AUTH_CACHE_TTL_SECONDS; the admin change
    // dropped it in this isolate.
    expect(off.headers.get("x-cache")).toBe("BYPASS");
  });

  it("coalesces concurrent identical misses into one backend request", async () => {
    const { key } = await newTenantKey();
    const m = `hold-${crypto.randomUUID()}`;
    const req = () => gw("/v1/chat/completions", authed(key, { model: "test-hold", messages: [{ role: "user", content: m }], temperature: 0 }));
    const all = Promise.all(Array.from({ length: 5 }, req));
    await eventually(5000, () => seenUpstream(m), (s) => s.length === 1);
    await fetch(`${env.UPSTREAM_URL}/_release?marker=${m}`);
    const results = await all;
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(results.map((r) => r.headers.get("x-cache")).sort()).toEqual(["HIT", "HIT", "HIT", "HIT", "MISS"]);
    expect(await seenUpstream(m)).toHaveLength(1);
  });

  it("records a hit in the ledger as a cache hit, priced at the cached-input rate", async () => {
    const { key, tenant } = await newTenantKey();
    const m = crypto.randomUUID();
    const a = (await (await gw("/v1/chat/completions", authed(key, body(m)))).json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    const hit = await gw("/v1/chat/completions", authed(key, body(m)));
    const hitId = hit.headers.get("x-request-id")!;
    await hit.text();
    const row = await eventually(10_000, () => env.DB.prepare("SELECT * FROM usage_events WHERE event_id = ?").bind(hitId).first<Record<string, number | string>>(), (r) => !!r);
    expect(row).toMatchObject({ tenant_id: tenant, status: "cache_hit", pod: null, prompt_tokens: a.usage.prompt_tokens, cached_tokens: a.usage.prompt_tokens, completion_tokens: a.usage.completion_tokens });
    expect(row!.cost_micros).toBe(Math.round((a.usage.prompt_tokens + a.usage.completion_tokens) * 0.07));
  });
});
