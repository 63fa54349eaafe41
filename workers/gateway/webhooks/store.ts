import { nowSeconds, newId } from "../../../src/ids.js";
import { errors } from "../../../src/openai/errors.js";
import type { DeliveryStatus, WebhookEndpoint, WebhookEventType } from "../../../src/webhooks/schemas.js";
import { generateWebhookSecret } from "../../../src/webhooks/signing.js";
import { toPage, type Page, type PageQuery } from "../../../src/admin/pagination.js";
import { EVERY, pageRows } from "../admin/keyset.js";

/** D1 access for webhook endpoints and their deliveries. */

interface EndpointRow {
  id: string;
  tenant_id: string;
  url: string;
  events: string;
  secret: string;
  previous_secret: string | null;
  previous_until: number | null;
  status: "active" | "disabled";
  disabled_reason: string | null;
  created_at: number;
}

export interface EndpointWithSecrets extends WebhookEndpoint {
  /** Every secret that signs right now: the current one, plus the previous one during a rotation overlap. */
  secrets: string[];
}

const toEndpoint = (r: EndpointRow): WebhookEndpoint => ({
  id: r.id,
  object: "webhook_endpoint",
  tenant_id: r.tenant_id,
  url: r.url,
  events: JSON.parse(r.events) as WebhookEventType[],
  status: r.status,
  disabled_reason: r.disabled_reason,
  created_at: r.created_at,
});

const withSecrets = (r: EndpointRow, now: number): EndpointWithSecrets => ({
  ...toEndpoint(r),
  secrets: r.previous_secret && (r.previous_until ?? 0) > now ? [r.secret, r.previous_secret] : [r.secret],
});

export async function createEndpoint(db: D1Database, tenantId: string, url: string, events: WebhookEventType[]): Promise<WebhookEndpoint & { secret: string }> {
  const now = nowSeconds();
  const row: EndpointRow = {
    id: newId("wh_"),
    tenant_id: tenantId,
    url,
    events: JSON.stringify([...new Set(events)]),
    secret: generateWebhookSecret(),
    previous_secret: null,
    previous_until: null,
    status: "active",
    disabled_reason: null,
    created_at: now,
  };
  await db
    .prepare("INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)")
    .bind(row.id, row.tenant_id, row.url, row.events, row.secret, now, now)
    .run();
  return { ...toEndpoint(row), secret: row.secret };
}

async function row(db: D1Database, tenantId: string, id: string): Promise<EndpointRow> {
  const r = await db.prepare("SELECT * FROM webhook_endpoints WHERE id = ? AND tenant_id = ? AND deleted_at IS NULL").bind(id, tenantId).first<EndpointRow>();
  if (!r) throw errors.notFound(`No webhook endpoint '${id}' for tenant '${tenantId}'.`);
  return r;
}

export async function listEndpoints(db: D1Database, tenantId: string): Promise<WebhookEndpoint[]> {
  const { results } = await db.prepare("SELECT * FROM webhook_endpoints WHERE tenant_id = ? AND deleted_at IS NULL ORDER BY created_at, id").bind(tenantId).all<EndpointRow>();
  return results.map(toEndpoint);
}

export async function endpointForDelivery(db: D1Database, id: string): Promise<EndpointWithSecrets | null> {
  const r = await db.prepare("SELECT * FROM webhook_endpoints WHERE id = ?").bind(id).first<EndpointRow>();
  return r ? withSecrets(r, nowSeconds()) : null;
}

export async function rotateSecret(db: D1Database, tenantId: string, id: string, overlapSeconds: number): Promise<WebhookEndpoint & { secret: string }> {
  const r = await row(db, tenantId, id);
  const secret = generateWebhookSecret();
  const now = nowSeconds();
  await db
    .prepare("UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, previous_until = ?, updated_at = ? WHERE id = ?")
    .bind(secret, overlapSeconds > 0 ? r.secret : null, overlapSeconds > 0 ? now + overlapSeconds : null, now, id)
    .run();
  return { ...toEndpoint(r), secret };
}

export async function setEndpointStatus(db: D1Database, id: string, status: "active" | "disabled", reason: string | null): Promise<void> {
  await db.prepare("UPDATE webhook_endpoints SET status = ?, disabled_reason = ?, updated_at = ? WHERE id = ?").bind(status, reason, nowSeconds(), id).run();
}

export async function enableEndpoint(db: D1Database, tenantId: string, id: string): Promise<WebhookEndpoint> {
  await row(db, tenantId, id);
  await setEndpointStatus(db, id, "active", null);
  return toEndpoint(await row(db, tenantId, id));
}

/**
 * Deletes an endpoint: its pending deliveries are cancelled and it is gone from the admin API (404 from then on).
 * The row stays, marked, because its deliveries refer to it.
 */
export async function deleteEndpoint(db: D1Database, tenantId: string, id: string): Promise<void> {
  await row(db, tenantId, id);
  const now = nowSeconds();
  await db.batch([
    db.prepare("UPDATE webhook_deliveries SET status = 'cancelled' WHERE endpoint_id = ? AND status = 'pending'").bind(id),
    db.prepare("UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = 'deleted', deleted_at = ?, updated_at = ? WHERE id = ?").bind(now, now, id),
  ]);
}

export interface NewDelivery {
  id: string;
  endpointId: string;
  tenantId: string;
  type: WebhookEventType;
  payload: string;
}

export async function insertDeliveries(db: D1Database, ds: NewDelivery[]): Promise<void> {
  if (ds.length === 0) return;
  const now = nowSeconds();
  await db.batch(
    ds.map((d) =>
      db
        .prepare("INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, payload, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")
        .bind(d.id, d.endpointId, d.tenantId, d.type, d.payload, now),
    ),
  );
}

export interface DeliveryRow {
  id: string;
  endpoint_id: string;
  tenant_id: string;
  event_type: string;
  payload: string;
  status: DeliveryStatus;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  delivered_at: number | null;
  dead_at: number | null;
}

export async function getDelivery(db: D1Database, id: string): Promise<DeliveryRow | null> {
  return db.prepare("SELECT * FROM webhook_deliveries WHERE id = ?").bind(id).first<DeliveryRow>();
}

export async function recordAttempt(db: D1Database, id: string, outcome: { status: DeliveryRow["status"]; httpStatus: number | null; error: string | null }): Promise<void> {
  const now = nowSeconds();
  await db
    .prepare(
      `UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?, last_status = ?, last_error = ?,
         delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,
         dead_at = CASE WHEN ? = 'dead' THEN ? ELSE dead_at END
       WHERE id = ?`,
    )
    .bind(outcome.status, outcome.httpStatus, outcome.error, outcome.status, now, outcome.status, now, id)
    .run();
}

/** A page of an endpoint's deliveries, newest first, optionally of one status. */
export async function listDeliveries(db: D1Database, tenantId: string, endpointId: string, q: PageQuery, status?: DeliveryRow["status"]): Promise<Page<DeliveryRow>> {
  await row(db, tenantId, endpointId);
  const filter = status ? { sql: "status = ?", binds: [status] } : EVERY;
  return toPage(await pageRows<DeliveryRow>(db, "webhook_deliveries", { sql: "endpoint_id = ?", binds: [endpointId] }, filter, q, "desc"), q.limit);
}

/** One delivery of a tenant's endpoint, or a 404. */
export async function deliveryOf(db: D1Database, tenantId: string, endpointId: string, id: string): Promise<DeliveryRow> {
  await row(db, tenantId, endpointId);
  const d = await db.prepare("SELECT * FROM webhook_deliveries WHERE id = ? AND endpoint_id = ?").bind(id, endpointId).first<DeliveryRow>();
  if (!d) throw errors.notFound(`No delivery '${id}' for this endpoint.`);
  return d;
}

export { row as endpointRow };
