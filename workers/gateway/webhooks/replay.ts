import { newId } from "../../../src/ids.js";
import type { Env } from "../env.js";
import { EVENT_JSON } from "../metering/usage-consumer.js";
import { insertDeliveries, type EndpointWithSecrets } from "./store.js";

const CHUNK = 500;

/** Re-sends the usage events of a time range to one endpoint, as new usage.recorded deliveries of ≤ 500 events. */
export async function replayRange(env: Env, ep: EndpointWithSecrets, from: number, to: number): Promise<{ deliveries: number; events: number }> {
  const { results } = await env.DB.prepare(`SELECT ${EVENT_JSON} AS e FROM usage_events WHERE tenant_id = ? AND ended_at >= ? AND ended_at < ? ORDER BY ended_at, event_id`)
    .bind(ep.tenant_id, from, to)
    .all<{ e: string }>();
  const events = results.map((r) => JSON.parse(r.e) as unknown);
  const ds = [];
  for (let i = 0; i < events.length; i += CHUNK) {
    const payload = JSON.stringify({ type: "usage.recorded", timestamp: new Date().toISOString(), data: { events: events.slice(i, i + CHUNK), replay: { from, to } } });
    ds.push({ id: newId("rpl_"), endpointId: ep.id, tenantId: ep.tenant_id, type: "usage.recorded" as const, payload });
  }
  await insertDeliveries(env.DB, ds);
  if (ds.length) await env.WEBHOOK_QUEUE.sendBatch(ds.map((d) => ({ body: { delivery_id: d.id } })));
  return { deliveries: ds.length, events: events.length };
}
