import { toPage } from "../../../src/admin/pagination.js";
import { newId } from "../../../src/ids.js";
import type { ReplayRequest } from "../../../src/webhooks/schemas.js";
import { rowsAfter, type Where } from "../admin/keyset.js";
import type { Env } from "../env.js";
import { EVENT_JSON } from "../metering/usage-consumer.js";
import { enqueueDeliveries } from "./enqueue.js";
import { insertDeliveries, type EndpointWithSecrets } from "./store.js";

/** Events per usage.recorded delivery. */
const CHUNK = 500;

export interface ReplayResult {
  deliveries: number;
  events: number;
  /** Events of the range remain: call again with `after: last_event_id`. */
  has_more: boolean;
  last_event_id: string | null;
}

/**
 * Re-sends the usage events that ended in [from, to) to one endpoint, as new usage.recorded deliveries of
 * ≤ 500 events, in (ended_at, event_id) order. One call sends at most `limit` events, so neither its memory nor
 * its D1 and Queue batches grow with the range; a longer range resumes with `after`.
 */
export async function replayRange(env: Env, ep: EndpointWithSecrets, r: ReplayRequest): Promise<ReplayResult> {
  const tenant: Where = { sql: "tenant_id = ?", binds: [ep.tenant_id] };
  const cursor = await rowsAfter(env.DB, "usage_events", "asc", r.after, tenant, `No usage event '${r.after}' for this tenant.`);
  const { results } = await env.DB.prepare(
    `SELECT event_id AS id, ${EVENT_JSON} AS e FROM usage_events WHERE ${tenant.sql} AND ended_at >= ? AND ended_at < ? AND ${cursor.sql}
      ORDER BY ended_at, event_id LIMIT ?`,
  )
    .bind(...tenant.binds, r.from, r.to, ...cursor.binds, r.limit + 1)
    .all<{ id: string; e: string }>();
  const page = toPage(results, r.limit);
  const events = page.data.map((row) => JSON.parse(row.e) as unknown);
  const ds = [];
  for (let i = 0; i < events.length; i += CHUNK) {
    const payload = JSON.stringify({ type: "usage.recorded", timestamp: new Date().toISOString(), data: { events: events.slice(i, i + CHUNK), replay: { from: r.from, to: r.to } } });
    ds.push({ id: newId("rpl_"), endpointId: ep.id, tenantId: ep.tenant_id, type: "usage.recorded" as const, payload });
  }
  await insertDeliveries(env.DB, ds);
  await enqueueDeliveries(env.WEBHOOK_QUEUE, ds.map((d) => d.id));
  return { deliveries: ds.length, events: events.length, has_more: page.has_more, last_event_id: page.last_id };
}
