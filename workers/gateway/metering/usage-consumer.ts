import { newId, nowSeconds } from "../../../src/ids.js";
import { UsageRecordSchema, type UsageRecord } from "../../../src/metering/usage-record.js";
import type { Env } from "../env.js";
import { enqueueDeliveries } from "../webhooks/enqueue.js";
import { writeLedger } from "./ledger.js";

/** The JSON a usage event has in webhook payloads and the usage API. */
export const EVENT_JSON = `json_object('event_id', event_id, 'tenant_id', tenant_id, 'key_id', key_id, 'model', model,
  'region', region, 'pod', pod, 'status', status, 'stream', json(CASE stream WHEN 1 THEN 'true' ELSE 'false' END),
  'prompt_tokens', prompt_tokens, 'cached_tokens', cached_tokens, 'completion_tokens', completion_tokens,
  'estimated', json(CASE estimated WHEN 1 THEN 'true' ELSE 'false' END), 'cost_micros', cost_micros,
  'started_at', started_at, 'ended_at', ended_at)`;

/**
 * Queue consumer for usage records: ledger first (idempotent), then the webhook outbox. For each tenant in the
 * batch, events not yet carried by a usage.recorded delivery are claimed and the deliveries (one per active
 * subscribed endpoint, same events) are created in the same transaction as the claim, so a crash can neither
 * lose events nor send them twice under different ids. Deliveries are then queued for sending.
 */
export async function consumeUsage(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const records: UsageRecord[] = [];
  for (const m of batch.messages) {
    const r = UsageRecordSchema.safeParse(m.body);
    if (r.success) records.push(r.data);
    else console.error(JSON.stringify({ msg: "dropping malformed usage record", id: m.id, error: r.error.issues[0]?.message }));
  }
  await writeLedger(env.DB, records);
  const created: string[] = [];
  for (const tenant of new Set(records.map((r) => r.tenant_id))) {
    const ids = records.filter((r) => r.tenant_id === tenant).map((r) => r.event_id);
    created.push(...(await fanOut(env.DB, tenant, ids)));
  }
  await enqueueDeliveries(env.WEBHOOK_QUEUE, created);
  batch.ackAll();
}

async function fanOut(db: D1Database, tenant: string, eventIds: string[]): Promise<string[]> {
  const endpoints = await db
    .prepare("SELECT id FROM webhook_endpoints WHERE tenant_id = ? AND status = 'active' AND EXISTS (SELECT 1 FROM json_each(events) WHERE value = 'usage.recorded')")
    .bind(tenant)
    .all<{ id: string }>();
  if (endpoints.results.length === 0) return [];
  const batchId = newId("evb_");
  const ts = new Date().toISOString();
  const results = await db.batch([
    // The ids go as one JSON array: D1 binds at most 100 parameters to a statement, and a batch holds up to 100.
    db.prepare("UPDATE usage_events SET webhook_batch = ? WHERE tenant_id = ? AND webhook_batch IS NULL AND event_id IN (SELECT value FROM json_each(?))").bind(batchId, tenant, JSON.stringify(eventIds)),
    db
      .prepare(
        `INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, payload, created_at)
         SELECT ? || '_' || e.id, e.id, e.tenant_id, 'usage.recorded',
           json_object('type', 'usage.recorded', 'timestamp', ?, 'data',
             json_object('events', (SELECT json_group_array(${EVENT_JSON}) FROM usage_events WHERE webhook_batch = ?))), ?
         FROM webhook_endpoints e
         WHERE changes() > 0 AND e.tenant_id = ? AND e.status = 'active'
           AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE value = 'usage.recorded')
         RETURNING id`,
      )
      .bind(batchId, ts, batchId, nowSeconds(), tenant),
  ]);
  return (results[1]!.results as { id: string }[]).map((r) => r.id);
}
