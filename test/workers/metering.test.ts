import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { UsageRecordSchema, type UsageRecord } from "../../src/metering/usage-record.js";
import worker from "../../workers/gateway/index.js";
import { adminCall, authed, gw, newTenantKey } from "./helpers.js";
import { eventually } from "../support/eventually.js";
import { maxJsonFunctionArguments, withD1Limits } from "./platform-limits.js";
import { EVENT_JSON } from "../../workers/gateway/metering/usage-consumer.js";


const rowsOf = async (tenant: string) =>
  (await env.DB.prepare("SELECT * FROM usage_events WHERE tenant_id = ? ORDER BY event_id").bind(tenant).all<Record<string, number | string | null>>()).results;
const hourlyOf = async (tenant: string) =>
  (await env.DB.prepare("SELECT * FROM usage_hourly WHERE tenant_id = ? ORDER BY model, hour").bind(tenant).all()).results;

describe("usage metering into the D1 ledger", () => {
  it("200 requests (stream, non-stream, cancelled, cache hits) → 200 rows whose sums match what clients saw; redelivery changes nothing", async () => {
    const { key, tenant } = await newTenantKey();
    let seenPrompt = 0;
    let seenCompletion = 0;
    const cancelledIds: string[] = [];
    const deterministic = { model: "test-echo", messages: [{ role: "user", content: `the cached one ${tenant}` }], temperature: 0 };
    const see = (u: { prompt_tokens: number; completion_tokens: number }) => {
      seenPrompt += u.prompt_tokens;
      seenCompletion += u.completion_tokens;
    };
    // Request 0 fills the edge cache; every fourth request after it is a hit.
    see(((await (await gw("/v1/chat/completions", authed(key, deterministic))).json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage);
    const jobs = Array.from({ length: 199 }, async (_, j) => {
      const i = j + 1;
      const kind = i % 4;
      const content = `request ${i} ${"word ".repeat(i % 7)}`;
      if (kind === 3) {
        const r = await gw("/v1/chat/completions", authed(key, deterministic));
        expect(r.headers.get("x-cache")).toBe("HIT");
        see(((await r.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage);
      } else if (kind === 0) {
        const r = await gw("/v1/chat/completions", authed(key, { model: "test-echo", messages: [{ role: "user", content }] }));
        const u = ((await r.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
        seenPrompt += u.prompt_tokens;
        seenCompletion += u.completion_tokens;
      } else if (kind === 1) {
        const r = await gw("/v1/chat/completions", authed(key, { model: "test-echo", messages: [{ role: "user", content }], stream: true, stream_options: { include_usage: true } }));
        const text = await r.text();
        const usage = text.split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6))).find((c) => c.usage)!.usage;
        seenPrompt += usage.prompt_tokens;
        seenCompletion += usage.completion_tokens;
      } else {
        const r = await gw("/v1/chat/completions", authed(key, { model: "test-slow", messages: [{ role: "user", content }], stream: true }));
        cancelledIds.push(r.headers.get("x-request-id")!);
        const reader = r.body!.getReader();
        await reader.read();
        await reader.read();
        await reader.cancel();
      }
    });
    await Promise.all(jobs);
    const rows = await eventually(15_000, () => rowsOf(tenant), (r) => r.length >= 200);
    expect(rows).toHaveLength(200);
    const seen = rows.filter((r) => r.status === "completed" || r.status === "cache_hit");
    expect(rows.filter((r) => r.status === "cache_hit")).toHaveLength(50);
    expect(seen).toHaveLength(150); // 1 + 49 non-streamed, 50 streamed, 50 cache hits
    expect(seen.reduce((a, r) => a + Number(r.prompt_tokens), 0)).toBe(seenPrompt);
    expect(seen.reduce((a, r) => a + Number(r.completion_tokens), 0)).toBe(seenCompletion);
    expect(seen.every((r) => r.estimated === 0 && Number(r.cost_micros) > 0)).toBe(true);
    const cancelled = rows.filter((r) => r.status === "cancelled");
    expect(cancelled).toHaveLength(50);
    expect(cancelled.map((r) => r.event_id).sort()).toEqual([...cancelledIds].sort());
    expect(cancelled.every((r) => r.estimated === 1 && Number(r.completion_tokens) >= 1)).toBe(true);
    const hourly = await hourlyOf(tenant);
    expect(hourly.reduce((a, h) => a + Number((h as { requests: number }).requests), 0)).toBe(200);

    // The same records delivered again, twice: the ledger and the aggregates do not move. The batch is one
    // tenant's 200 records, under D1's production limits (no statement may grow with the batch).
    const records: UsageRecord[] = rows.map((r) =>
      UsageRecordSchema.parse({ ...r, stream: r.stream === 1, estimated: r.estimated === 1 }),
    );
    for (let round = 0; round < 2; round++) {
      const batch = createMessageBatch("usage-events", records.map((body, i) => ({ id: `redelivery-${round}-${i}`, timestamp: new Date(), attempts: 2, body })));
      const ctx = createExecutionContext();
      await worker.queue(batch, { ...env, DB: withD1Limits(env.DB) });
      const result = await getQueueResult(batch, ctx);
      expect(result.explicitAcks.length + (result.ackAll ? records.length : 0)).toBeGreaterThanOrEqual(records.length);
    }
    expect(await rowsOf(tenant)).toHaveLength(200);
    expect(await hourlyOf(tenant)).toEqual(hourly);
  }, 60_000);

  it("the event JSON fits D1's 32 arguments to a function (one json_object; a field more or two and it would not)", () => {
    expect(maxJsonFunctionArguments("SELECT json_object('a', 1, 'b', json_array(1, 2, 3), 'c', ',(')")).toBe(6);
    expect(maxJsonFunctionArguments(EVENT_JSON)).toBeLessThanOrEqual(32);
  });

  it("prices usage with the model's price table, cached prompt tokens at their own price", async () => {
    const { key, tenant } = await newTenantKey();
    const r = await gw("/v1/chat/completions", authed(key, { model: "test-echo", messages: [{ role: "user", content: "one two three" }] }));
    const u = ((await r.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
    const [row] = await eventually(10_000, () => rowsOf(tenant), (x) => x.length === 1);
    // test-echo reports no cached tokens: prompt at 0.27 $/M, completion at 1.10 $/M.
    expect(row!.cost_micros).toBe(Math.round(u.prompt_tokens * 0.27 + u.completion_tokens * 1.1));
  });
});

describe("usage API", () => {
  it("reports a tenant's own usage, grouped; another tenant's key sees only its own", async () => {
    const a = await newTenantKey();
    const b = await newTenantKey();
    for (let i = 0; i < 3; i++) await (await gw("/v1/chat/completions", authed(a.key, { model: "test-echo", messages: [{ role: "user", content: `a ${i}` }] }))).text();
    await (await gw("/v1/chat/completions", authed(b.key, { model: "test-echo", messages: [{ role: "user", content: "b" }] }))).text();
    await eventually(10_000, () => rowsOf(a.tenant), (x) => x.length === 3);
    await eventually(10_000, () => rowsOf(b.tenant), (x) => x.length === 1);
    const own = await gw("/v1/usage?group_by=model", { headers: { authorization: `Bearer ${a.key}` } });
    const report = (await own.json()) as { tenant_id: string; data: { model: string; requests: number }[] };
    expect(report.tenant_id).toBe(a.tenant);
    expect(report.data).toEqual([expect.objectContaining({ model: "test-echo", requests: 3 })]);
    // No parameter, header or path lets A read B.
    for (const path of [`/v1/usage?tenant_id=${b.tenant}`, `/v1/usage?tenant=${b.tenant}`]) {
      const r = (await (await gw(path, { headers: { authorization: `Bearer ${a.key}` } })).json()) as { tenant_id: string };
      expect(r.tenant_id).toBe(a.tenant);
    }
    expect((await gw(`/admin/tenants/${b.tenant}/usage`, { headers: { authorization: `Bearer ${a.key}` } })).status).toBe(401);
    const admin = await adminCall<{ data: { key: string; requests: number }[] }>("GET", `/tenants/${b.tenant}/usage?group_by=key`);
    expect(admin.json.data).toEqual([expect.objectContaining({ key: b.keyId, requests: 1 })]);
    expect((await adminCall("GET", `/tenants/${b.tenant}/usage?group_by=week`)).status).toBe(400);
  });

  it("whole hours come from the hourly aggregates, the partial ends from the events: the totals are the events'", async () => {
    const { tenant, keyId } = await newTenantKey();
    const other = await newTenantKey(); // same models and hours, another tenant: never counted
    const base = 1_700_000_000 - (1_700_000_000 % 3600); // an hour boundary
    const at = [-1, 0, 1, 1799, 3599, 3600, 3601, 5000, 7199, 7200, 9000, 10_799, 10_800, 12_000];
    const record = (t: string, k: string, i: number, offset: number) => ({
      event_id: `report-${t}-${i}`, tenant_id: t, key_id: k, model: i % 3 ? "test-echo" : "test-big", region: null, pod: null, status: "completed",
      stream: false, prompt_tokens: 10 + i, cached_tokens: i % 4, completion_tokens: 2 * i + 1, cost_micros: 100 + i, estimated: false,
      started_at: base + offset, ended_at: base + offset,
    });
    const records = at.map((o, i) => record(tenant, keyId, i, o));
    await env.USAGE_QUEUE.sendBatch([...records, ...at.map((o, i) => record(other.tenant, other.keyId, i, o))].map((body) => ({ body })));
    await eventually(10_000, () => rowsOf(tenant), (x) => x.length === at.length);
    type Rec = (typeof records)[number];
    const bucketOf: Record<"model" | "hour" | "key", (r: Rec) => string | number> = { model: (r) => r.model, hour: (r) => r.ended_at - (r.ended_at % 3600), key: (r) => r.key_id };
    const sum = (rs: Rec[]) => ({
      requests: rs.length,
      prompt_tokens: rs.reduce((a, r) => a + r.prompt_tokens, 0),
      cached_tokens: rs.reduce((a, r) => a + r.cached_tokens, 0),
      completion_tokens: rs.reduce((a, r) => a + r.completion_tokens, 0),
      cost_usd: rs.reduce((a, r) => a + r.cost_micros, 0) / 1e6,
    });
    const order = (a: string | number, b: string | number) => (typeof a === "number" && typeof b === "number" ? a - b : String(a) < String(b) ? -1 : 1);
    const expected = (from: number, to: number, g?: keyof typeof bucketOf) => {
      const inRange = records.filter((r) => r.ended_at >= from && r.ended_at < to);
      if (!g) return inRange.length ? [sum(inRange)] : [];
      return [...new Set(inRange.map(bucketOf[g]))].sort(order).map((b) => ({ [g]: b, ...sum(inRange.filter((r) => bucketOf[g](r) === b)) }));
    };
    const reportOf = async (from: number, to: number, g?: string) => (await adminCall<{ data: unknown[] }>("GET", `/tenants/${tenant}/usage?from=${from}&to=${to}${g ? `&group_by=${g}` : ""}`)).json.data;
    // Ranges with and without whole hours, with partial hours at either end, and empty.
    for (const [from, to] of [[-10, 12_001], [0, 10_800], [1, 7200], [3600, 3601], [100, 200], [5, 5]] as const) {
      for (const g of [undefined, "model", "hour", "key"] as const) {
        expect(await reportOf(base + from, base + to, g), `${g} ${from}..${to}`).toEqual(expected(base + from, base + to, g));
      }
    }
    // Which source answers: an aggregate changed behind the ledger's back shows in whole hours only.
    await env.DB.prepare("UPDATE usage_hourly SET requests = requests + 1000 WHERE tenant_id = ? AND hour = ? AND model = 'test-echo'").bind(tenant, base).run();
    const firstHour = records.filter((r) => r.ended_at >= base && r.ended_at < base + 3600);
    expect(await reportOf(base, base + 3600)).toEqual([{ ...sum(firstHour), requests: firstHour.length + 1000 }]);
    expect(await reportOf(base + 1, base + 3600)).toEqual(expected(base + 1, base + 3600));
  });
});
