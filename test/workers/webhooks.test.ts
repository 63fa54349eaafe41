import { createMessageBatch, createScheduledController, createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import worker from "../../workers/gateway/index.js";
import { adminCall, authed, gw, newTenantKey } from "./helpers.js";
import { eventually } from "../support/eventually.js";
import { withD1Limits, withQueueLimits } from "./platform-limits.js";

interface Hook {
  name: string;
  headers: Record<string, string>;
  body: string;
  status: number;
}
const hooks = async (name: string): Promise<Hook[]> => (await fetch(`${env.UPSTREAM_URL}/_hooks?name=${name}`)).json();


async function endpoint(tenant: string, name: string, events?: string[]) {
  const r = await adminCall<{ id: string; secret: string; url: string }>("POST", `/tenants/${tenant}/webhooks`, { url: `${env.UPSTREAM_URL}/_hooks/${name}`, ...(events ? { events } : {}) });
  expect(r.status).toBe(201);
  return r.json;
}

const call = async (key: string, i: number) => (await gw("/v1/chat/completions", authed(key, { model: "test-echo", messages: [{ role: "user", content: `billable ${i}` }] }))).text();
/** The usage event ids a usage.recorded payload carries. */
const eventIdsIn = (payload: string) => (JSON.parse(payload) as { data: { events: { event_id: string }[] } }).data.events.map((e) => e.event_id);
const eventIdsOf = (h: Hook) => eventIdsIn(h.body);
/** The tenant's event ids in the ledger, once there are `n`. */
const ledgerOf = (tenant: string, n: number) =>
  eventually(10_000, async () => (await env.DB.prepare("SELECT event_id FROM usage_events WHERE tenant_id = ?").bind(tenant).all<{ event_id: string }>()).results, (r) => r.length === n);
/** Waits until the tenant's usage has reached the hourly aggregates (`hours` rows of them). */
const hourlyRecorded = (tenant: string, hours = 1) =>
  eventually(10_000, async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM usage_hourly WHERE tenant_id = ?").bind(tenant).first<{ n: number }>())!.n, (n) => n === hours);
/** A completed test-echo usage record that ended at `at`, as the edge queues it. */
const usageRecord = (tenant: string, keyId: string, eventId: string, at: number, counts = { prompt_tokens: 3, cached_tokens: 0, completion_tokens: 2, cost_micros: 1 }) => ({
  event_id: eventId, tenant_id: tenant, key_id: keyId, model: "test-echo", region: null, pod: null, status: "completed",
  stream: false, ...counts, estimated: false, started_at: at, ended_at: at,
});
/** One run of the hourly cron, to its end. */
async function runCron(cronEnv: typeof env = env): Promise<void> {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "5 * * * *" }), cronEnv, ctx);
  await waitOnExecutionContext(ctx);
}

describe("billing webhooks (Standard Webhooks)", () => {
  it("a receiver failing its first attempts gets every event, validly signed, duplicates only as retries of one id", async () => {
    const { key, tenant } = await newTenantKey();
    const name = `flaky2-${crypto.randomUUID()}`;
    const ep = await endpoint(tenant, name);
    expect(ep.secret).toMatch(/^whsec_/);
    const n = 12;
    for (let i = 0; i < n; i++) await call(key, i);
    const ledger = await ledgerOf(tenant, n);
    const received = await eventually(20_000, () => hooks(name), (hs) => new Set(hs.filter((h) => h.status === 200).flatMap(eventIdsOf)).size === n);
    const wh = new Webhook(ep.secret);
    for (const h of received) expect(() => wh.verify(h.body, h.headers)).not.toThrow();
    const delivered = received.filter((h) => h.status === 200);
    expect(new Set(delivered.flatMap(eventIdsOf))).toEqual(new Set(ledger.map((r) => r.event_id)));
    // Each webhook-id: failures first, exactly one success, all with the same body.
    const byId = new Map<string, Hook[]>();
    for (const h of received) byId.set(h.headers["webhook-id"]!, [...(byId.get(h.headers["webhook-id"]!) ?? []), h]);
    for (const attempts of byId.values()) {
      expect(attempts.map((a) => a.status)).toEqual([503, 503, 200]);
      expect(new Set(attempts.map((a) => a.body)).size).toBe(1);
      expect(JSON.parse(attempts[0]!.body).type).toBe("usage.recorded");
    }
    const deliveries = await adminCall<{ data: { status: string; attempts: number }[] }>("GET", `/tenants/${tenant}/webhooks/${ep.id}/deliveries`);
    expect(deliveries.json.data.every((d) => d.status === "delivered" && d.attempts === 3)).toBe(true);
  }, 40_000);

  it("a queue batch of one tenant's 100 usage records becomes one delivery of all of them, within D1's statement limits", async () => {
    const { tenant, keyId } = await newTenantKey();
    const ep = await endpoint(tenant, `ok-${crypto.randomUUID()}`);
    const now = Math.floor(Date.now() / 1000);
    const records = Array.from({ length: 100 }, (_, i) => usageRecord(tenant, keyId, `req_bulk_${tenant}_${i}`, now));
    const batch = createMessageBatch("usage-events", records.map((body, i) => ({ id: `bulk-${i}`, timestamp: new Date(), attempts: 1, body })));
    await worker.queue(batch, { ...env, DB: withD1Limits(env.DB) });
    const deliveries = (await env.DB.prepare("SELECT payload FROM webhook_deliveries WHERE endpoint_id = ?").bind(ep.id).all<{ payload: string }>()).results;
    expect(deliveries).toHaveLength(1);
    expect(eventIdsIn(deliveries[0]!.payload).sort()).toEqual(records.map((r) => r.event_id).sort());
  });

  it("a receiver answering 410 disables its endpoint", async () => {
    const { key, tenant } = await newTenantKey();
    const name = `gone-${crypto.randomUUID()}`;
    const ep = await endpoint(tenant, name);
    await call(key, 0);
    await eventually(10_000, () => hooks(name), (hs) => hs.length > 0);
    const list = await eventually(10_000, async () => (await adminCall<{ data: { id: string; status: string; disabled_reason: string }[] }>("GET", `/tenants/${tenant}/webhooks`)).json.data, (d) => d[0]?.status === "disabled");
    expect(list[0]).toMatchObject({ id: ep.id, status: "disabled" });
    expect(list[0]!.disabled_reason).toMatch(/410/);
    await call(key, 1);
    await eventually(10_000, async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM usage_events WHERE tenant_id = ?").bind(tenant).first<{ n: number }>())!.n, (n) => n === 2);
    expect(await hooks(name)).toHaveLength(1); // nothing more is sent to a disabled endpoint
  });

  it("replay re-sends a time range; rotation signs with both secrets during the overlap", async () => {
    const { key, tenant } = await newTenantKey();
    const name = `ok-${crypto.randomUUID()}`;
    const ep = await endpoint(tenant, name);
    const t0 = Math.floor(Date.now() / 1000);
    for (let i = 0; i < 3; i++) await call(key, i);
    await eventually(10_000, () => hooks(name), (hs) => new Set(hs.flatMap(eventIdsOf)).size === 3);
    const rotated = await adminCall<{ secret: string }>("POST", `/tenants/${tenant}/webhooks/${ep.id}/rotate-secret`, { overlap_seconds: 3600 });
    expect(rotated.json.secret).not.toBe(ep.secret);
    const replay = await adminCall<{ deliveries: number; events: number; has_more: boolean; last_event_id: string }>("POST", `/tenants/${tenant}/webhooks/${ep.id}/replay`, { from: t0 - 1, to: t0 + 3600 });
    expect(replay.status).toBe(202);
    expect(replay.json).toMatchObject({ deliveries: 1, events: 3, has_more: false });
    const all = await eventually(10_000, () => hooks(name), (hs) => hs.some((h) => JSON.parse(h.body).data.replay));
    const replayed = all.find((h) => JSON.parse(h.body).data.replay)!;
    expect(new Set(eventIdsOf(replayed))).toEqual(new Set(all.filter((h) => !JSON.parse(h.body).data.replay).flatMap(eventIdsOf)));
    expect(replayed.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(() => new Webhook(ep.secret).verify(replayed.body, replayed.headers)).not.toThrow();
    expect(() => new Webhook(rotated.json.secret).verify(replayed.body, replayed.headers)).not.toThrow();
    expect(() => new Webhook(`whsec_${btoa("x".repeat(32))}`).verify(replayed.body, replayed.headers)).toThrow();
  });

  it("replays a long range call by call: each sends at most its limit, and the calls together send every event once", async () => {
    const { key, tenant } = await newTenantKey();
    const ep = await endpoint(tenant, `ok-${crypto.randomUUID()}`);
    const t0 = Math.floor(Date.now() / 1000);
    for (let i = 0; i < 5; i++) await call(key, i);
    const ledger = await ledgerOf(tenant, 5);
    type Replayed = { deliveries: number; events: number; has_more: boolean; last_event_id: string | null };
    const calls: Replayed[] = [];
    for (let after: string | null = null; ; ) {
      const r: { status: number; json: Replayed } = await adminCall<Replayed>("POST", `/tenants/${tenant}/webhooks/${ep.id}/replay`, { from: t0 - 1, to: t0 + 3600, limit: 2, ...(after ? { after } : {}) });
      expect(r.status).toBe(202);
      calls.push(r.json);
      if (!r.json.has_more) break;
      after = r.json.last_event_id;
    }
    expect(calls.map((c) => c.events)).toEqual([2, 2, 1]);
    const sent = await env.DB.prepare("SELECT payload FROM webhook_deliveries WHERE endpoint_id = ? AND id LIKE 'rpl_%'").bind(ep.id).all<{ payload: string }>();
    const ids = sent.results.flatMap((d) => eventIdsIn(d.payload));
    expect(ids.sort()).toEqual(ledger.map((r) => r.event_id).sort());
    const bad = await adminCall<{ error: { param: string } }>("POST", `/tenants/${tenant}/webhooks/${ep.id}/replay`, { from: 0, to: t0 + 3600, after: "evt_nope" });
    expect([bad.status, bad.json.error.param]).toEqual([400, "after"]);
    expect((await adminCall("POST", `/tenants/${tenant}/webhooks/${ep.id}/replay`, { from: 0, to: 1, limit: 10_001 })).status).toBe(400);
  });

  it("sends usage.hourly for the hour that ended, once", async () => {
    const { tenant, keyId } = await newTenantKey();
    const name = `ok-${crypto.randomUUID()}`;
    await endpoint(tenant, name, ["usage.hourly"]);
    const lastHour = Math.floor(Date.now() / 1000) - 3600;
    const records = [1, 2].map((i) => usageRecord(tenant, keyId, `hourly-${tenant}-${i}`, lastHour, { prompt_tokens: 10, cached_tokens: 4, completion_tokens: 5, cost_micros: 12 }));
    await env.USAGE_QUEUE.sendBatch(records.map((body) => ({ body })));
    await hourlyRecorded(tenant);
    for (let run = 0; run < 2; run++) await runCron();
    const got = await eventually(10_000, () => hooks(name), (hs) => hs.length >= 1);
    expect(got).toHaveLength(1);
    const payload = JSON.parse(got[0]!.body);
    expect(payload.type).toBe("usage.hourly");
    expect(payload.data.models).toEqual([{ model: "test-echo", requests: 2, prompt_tokens: 20, cached_tokens: 8, completion_tokens: 10, cost_micros: 24 }]);
  });

  it("catches up on hours a failed or missed cron run did not send (within a day), never from before the endpoint", async () => {
    const { tenant, keyId } = await newTenantKey();
    const name = `ok-${crypto.randomUUID()}`;
    const ep = await endpoint(tenant, name, ["usage.hourly"]);
    const now = Math.floor(Date.now() / 1000);
    const hour = now - (now % 3600);
    await env.DB.prepare("UPDATE webhook_endpoints SET created_at = ? WHERE id = ?").bind(now - 5 * 3600, ep.id).run();
    await endpoint(tenant, `ok-${crypto.randomUUID()}`, ["usage.hourly"]); // created now: the hours below are before its time
    const at = [3, 2, 2, 30].map((h) => now - h * 3600);
    await env.USAGE_QUEUE.sendBatch(at.map((t, i) => ({ body: usageRecord(tenant, keyId, `catch-up-${tenant}-${i}`, t) })));
    await hourlyRecorded(tenant, 3);
    for (let run = 0; run < 2; run++) await runCron();
    const made = await env.DB.prepare("SELECT endpoint_id, payload FROM webhook_deliveries WHERE tenant_id = ? AND event_type = 'usage.hourly' ORDER BY id").bind(tenant).all<{ endpoint_id: string; payload: string }>();
    expect(made.results.map((r) => r.endpoint_id)).toEqual([ep.id, ep.id]);
    const sent = made.results.map((r) => JSON.parse(r.payload).data as { hour_start: number; models: { requests: number }[] });
    expect(sent.map((d) => [d.hour_start, d.models[0]!.requests])).toEqual([[hour - 3 * 3600, 1], [hour - 2 * 3600, 2]]);
    await eventually(10_000, () => hooks(name), (hs) => hs.filter((h) => h.status === 200).length === 2);
  });

  it("sends usage.hourly to more endpoints than one Queue batch holds (100)", async () => {
    const { tenant, keyId } = await newTenantKey();
    const eps = [];
    for (let i = 0; i < 101; i++) eps.push(await endpoint(tenant, `ok-${crypto.randomUUID()}`, ["usage.hourly"]));
    const lastHour = Math.floor(Date.now() / 1000) - 3600;
    await env.USAGE_QUEUE.send(usageRecord(tenant, keyId, `hourly-bulk-${tenant}`, lastHour));
    await hourlyRecorded(tenant);
    await runCron({ ...env, WEBHOOK_QUEUE: withQueueLimits(env.WEBHOOK_QUEUE) });
    const delivered = () => env.DB.prepare("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE tenant_id = ? AND event_type = 'usage.hourly' AND status = 'delivered'").bind(tenant).first<number>("n");
    await eventually(20_000, delivered, (n) => n === eps.length);
  }, 30_000);

  it("deletes finished deliveries past WEBHOOK_RETENTION_DAYS, never a pending one", async () => {
    const { tenant } = await newTenantKey();
    const ep = await endpoint(tenant, `ok-${crypto.randomUUID()}`);
    const now = Math.floor(Date.now() / 1000);
    const day = 86_400;
    const rows = [
      ["old-delivered", "delivered", now - 31 * day],
      ["old-dead", "dead", now - 31 * day],
      ["old-cancelled", "cancelled", now - 31 * day],
      ["old-pending", "pending", now - 31 * day],
      ["recent-delivered", "delivered", now - 29 * day],
    ] as const;
    await env.DB.batch(rows.map(([name, status, at]) =>
      env.DB.prepare("INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, payload, status, attempts, created_at) VALUES (?, ?, ?, 'usage.recorded', '{}', ?, 1, ?)").bind(`${name}-${ep.id}`, ep.id, tenant, status, at),
    ));
    await runCron({ ...env, WEBHOOK_RETENTION_DAYS: "30" });
    const left = (await env.DB.prepare("SELECT id FROM webhook_deliveries WHERE endpoint_id = ? ORDER BY id").bind(ep.id).all<{ id: string }>()).results.map((r) => r.id);
    expect(left).toEqual([`old-pending-${ep.id}`, `recent-delivered-${ep.id}`]);
  });

  it("lists an endpoint's deliveries newest first, in pages; a delivery of another endpoint is not found", async () => {
    const { key, tenant } = await newTenantKey();
    const ep = await endpoint(tenant, `ok-${crypto.randomUUID()}`);
    const other = await endpoint(tenant, `ok-${crypto.randomUUID()}`);
    const t0 = Math.floor(Date.now() / 1000);
    await call(key, 0);
    await eventually(10_000, async () => (await adminCall<{ data: unknown[] }>("GET", `/tenants/${tenant}/webhooks/${ep.id}/deliveries`)).json.data, (d) => d.length === 1);
    for (let i = 0; i < 3; i++) expect((await adminCall("POST", `/tenants/${tenant}/webhooks/${ep.id}/replay`, { from: t0 - 1, to: t0 + 3600 })).status).toBe(202);
    type Row = { id: string; created_at: number };
    const all = (await adminCall<{ data: Row[] }>("GET", `/tenants/${tenant}/webhooks/${ep.id}/deliveries`)).json.data;
    expect(all).toHaveLength(4);
    expect(all.map((d) => d.created_at)).toEqual([...all.map((d) => d.created_at)].sort((x, y) => y - x));
    const first = await adminCall<{ data: Row[]; has_more: boolean; last_id: string }>("GET", `/tenants/${tenant}/webhooks/${ep.id}/deliveries?limit=3`);
    expect(first.json.has_more).toBe(true);
    const rest = await adminCall<{ data: Row[]; has_more: boolean }>("GET", `/tenants/${tenant}/webhooks/${ep.id}/deliveries?limit=3&after=${first.json.last_id}`);
    expect(rest.json.has_more).toBe(false);
    expect([...first.json.data, ...rest.json.data].map((d) => d.id)).toEqual(all.map((d) => d.id));
    expect((await adminCall("GET", `/tenants/${tenant}/webhooks/${ep.id}/deliveries?status=lost`)).status).toBe(400);
    expect((await adminCall("POST", `/tenants/${tenant}/webhooks/${other.id}/deliveries/${all[0]!.id}/retry`)).status).toBe(404);
  });

  it("dead-letters a delivery after its last attempt; the admin API lists it and can send it again", async () => {
    const { key, tenant } = await newTenantKey();
    const name = `flaky99-${crypto.randomUUID()}`;
    const ep = await endpoint(tenant, name);
    await call(key, 0);
    const dead = await eventually(30_000, async () => (await adminCall<{ data: { id: string; attempts: number; status: string; dead_at: number | null; last_status: number }[] }>("GET", `/tenants/${tenant}/webhooks/${ep.id}/deliveries?status=dead`)).json.data, (d) => d.length === 1);
    expect(dead[0]).toMatchObject({ attempts: 15, status: "dead", last_status: 503 });
    expect(dead[0]!.dead_at).not.toBeNull();
    expect(new Set((await hooks(name)).map((h) => h.headers["webhook-id"]))).toEqual(new Set([dead[0]!.id]));
    const again = await adminCall<{ status: string }>("POST", `/tenants/${tenant}/webhooks/${ep.id}/deliveries/${dead[0]!.id}/retry`);
    expect(again.status).toBe(202);
    await eventually(10_000, () => hooks(name), (hs) => hs.length > 15);
  }, 60_000);

  it("does not follow a receiver's redirect: the attempt fails and the Location never gets the event", async () => {
    const { key, tenant } = await newTenantKey();
    const rest = crypto.randomUUID();
    const ep = await endpoint(tenant, `moved-${rest}`);
    await call(key, 0);
    // A retry proves the first attempt counted as failed; followed, it would have been delivered.
    const [d] = await eventually(20_000, async () => (await adminCall<{ data: { attempts: number; last_status: number; last_error: string }[] }>("GET", `/tenants/${tenant}/webhooks/${ep.id}/deliveries`)).json.data, (ds) => (ds[0]?.attempts ?? 0) >= 2);
    expect(d).toMatchObject({ last_status: 307, last_error: expect.stringMatching(/redirects are not followed/) });
    expect(await hooks(`ok-${rest}`)).toEqual([]);
  }, 30_000);

  it("a deleted endpoint is gone: not listed, not re-enabled, its pending deliveries cancelled", async () => {
    const { key, tenant } = await newTenantKey();
    const name = `flaky99-${crypto.randomUUID()}`;
    const ep = await endpoint(tenant, name);
    const kept = await endpoint(tenant, `ok-${crypto.randomUUID()}`);
    await call(key, 0);
    const [d] = await eventually(10_000, async () => (await adminCall<{ data: { id: string; attempts: number }[] }>("GET", `/tenants/${tenant}/webhooks/${ep.id}/deliveries`)).json.data, (ds) => (ds[0]?.attempts ?? 0) >= 1);
    expect((await adminCall("DELETE", `/tenants/${tenant}/webhooks/${ep.id}`)).status).toBe(200);
    expect((await adminCall<{ data: { id: string }[] }>("GET", `/tenants/${tenant}/webhooks`)).json.data.map((e) => e.id)).toEqual([kept.id]);
    for (const [method, path] of [["POST", "enable"], ["POST", "rotate-secret"], ["GET", "deliveries"], ["DELETE", ""]] as const) {
      expect((await adminCall(method, `/tenants/${tenant}/webhooks/${ep.id}${path ? `/${path}` : ""}`)).status, `${method} ${path}`).toBe(404);
    }
    expect((await adminCall("POST", `/tenants/${tenant}/webhooks/${ep.id}/replay`, { from: 0, to: 1 })).status).toBe(404);
    // An attempt in flight during the delete may still record itself as pending; the next one cancels.
    await eventually(10_000, () => env.DB.prepare("SELECT status FROM webhook_deliveries WHERE id = ?").bind(d!.id).first<string>("status"), (s) => s === "cancelled");
  });

  it("validates endpoint URLs and keeps webhook routes behind the admin token", async () => {
    const { key, tenant } = await newTenantKey();
    expect((await adminCall("POST", `/tenants/${tenant}/webhooks`, { url: "not a url" })).status).toBe(400);
    expect((await adminCall("POST", `/tenants/${tenant}/webhooks`, { url: "ftp://example.com/x" })).status).toBe(400);
    expect((await adminCall("POST", `/tenants/${tenant}/webhooks`, { url: "https://example.com/x", events: ["nope"] })).status).toBe(400);
    expect((await adminCall("POST", "/tenants/ten_missing/webhooks", { url: "https://example.com/x" })).status).toBe(404);
    const asTenant = await gw(`/admin/tenants/${tenant}/webhooks`, { headers: { authorization: `Bearer ${key}` } });
    expect(asTenant.status).toBe(401);
  });
});
