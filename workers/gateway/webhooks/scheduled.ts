import { z } from "zod";
import { nowSeconds } from "../../../src/ids.js";
import type { Env } from "../env.js";
import { hourOf } from "../metering/ledger.js";
import { enqueueDeliveries } from "./enqueue.js";

/** Hours a missed or failed cron run is caught up on: each run sends what is still unsent of the last day. */
const CATCH_UP_HOURS = 24;

/**
 * Hourly (cron): one usage.hourly delivery per subscribed endpoint for each hour of its tenant's usage that ended
 * in the last day and was not sent yet (its id names endpoint and hour, so a later run creates nothing new and
 * a run that failed or never fired is made up by the next), beginning with the hour before the endpoint was
 * created; a sweep that re-queues pending deliveries never attempted for 10 minutes (a crash between creating
 * and queueing one); and the retention of finished deliveries (`pruneDeliveries`).
 */
export async function hourlyWebhooks(env: Env, now = nowSeconds()): Promise<string[]> {
  const current = hourOf(now);
  const ts = new Date(now * 1000).toISOString();
  const created = await env.DB.prepare(
    `INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, payload, created_at)
     SELECT 'hourly_' || e.id || '_' || h.hour, e.id, e.tenant_id, 'usage.hourly',
       json_object('type', 'usage.hourly', 'timestamp', ?, 'data', json_object(
         'tenant_id', e.tenant_id, 'hour_start', h.hour, 'hour_end', h.hour + 3600,
         'models', json_group_array(json_object('model', h.model, 'requests', h.requests, 'prompt_tokens', h.prompt_tokens,
             'cached_tokens', h.cached_tokens, 'completion_tokens', h.completion_tokens, 'cost_micros', h.cost_micros)))), ?
     FROM webhook_endpoints e JOIN usage_hourly h ON h.tenant_id = e.tenant_id AND h.hour >= ? AND h.hour < ?
     WHERE e.status = 'active' AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE value = 'usage.hourly')
       AND h.hour >= e.created_at - e.created_at % 3600 - 3600
     GROUP BY e.id, h.hour
     ON CONFLICT (id) DO NOTHING
     RETURNING id`,
  )
    .bind(ts, now, current - CATCH_UP_HOURS * 3600, current)
    .all<{ id: string }>();
  // Bounded, oldest first: 50 Queue batches a run (subrequests are limited); a larger backlog drains hour by hour.
  const stale = await env.DB.prepare("SELECT id FROM webhook_deliveries WHERE status = 'pending' AND attempts = 0 AND created_at < ? ORDER BY created_at LIMIT 5000")
    .bind(now - 600)
    .all<{ id: string }>();
  const ids = [...created.results, ...stale.results].map((r) => r.id);
  await enqueueDeliveries(env.WEBHOOK_QUEUE, ids);
  await pruneDeliveries(env, now);
  return ids;
}

const RetentionDaysSchema = z.coerce.number().positive().default(30);

/**
 * Finished deliveries (delivered, dead, cancelled) older than WEBHOOK_RETENTION_DAYS are deleted, at most 10,000 a
 * run: each carries a copy of its events, and D1 databases are bounded (10 GB). The events stay in the ledger,
 * and replay sends them again.
 */
async function pruneDeliveries(env: Env, now: number): Promise<void> {
  const days = RetentionDaysSchema.parse(env.WEBHOOK_RETENTION_DAYS || undefined);
  await env.DB.prepare(
    "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE status != 'pending' AND created_at < ? ORDER BY created_at LIMIT 10000)",
  )
    .bind(now - Math.round(days * 86_400))
    .run();
}
