import { MAX_ATTEMPTS, retryDelaySeconds } from "../../../src/webhooks/backoff.js";
import { webhookHeaders } from "../../../src/webhooks/signing.js";
import type { Env } from "../env.js";
import { endpointForDelivery, getDelivery, recordAttempt, setEndpointStatus } from "./store.js";

/**
 * Queue consumer for webhook deliveries: one signed POST per message. 2xx → delivered. 410 → the endpoint is
 * disabled (the receiver asked to stop). Redirects are not followed: the endpoint's URL passed the URL policy,
 * a Location would not have (a public receiver could bounce deliveries to a private address), so a 3xx counts as
 * a failed attempt. Anything else — error status, timeout, connection failure — is
 * retried by the queue with exponential back-off and jitter (honouring Retry-After), the same webhook-id every
 * time; after MAX_ATTEMPTS the delivery is dead-lettered (status "dead", listed and re-sendable via the admin API).
 */
export async function deliverWebhooks(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const base = Number(env.WEBHOOK_BACKOFF_BASE_SECONDS || 5);
  await Promise.all(
    batch.messages.map(async (m) => {
      const id = (m.body as { delivery_id?: unknown })?.delivery_id;
      const d = typeof id === "string" ? await getDelivery(env.DB, id) : null;
      if (!d || d.status !== "pending") return m.ack();
      const ep = await endpointForDelivery(env.DB, d.endpoint_id);
      if (!ep || ep.status !== "active") {
        await recordAttempt(env.DB, d.id, { status: "cancelled", httpStatus: null, error: "endpoint disabled" });
        return m.ack();
      }
      const attempt = d.attempts + 1;
      let httpStatus: number | null = null;
      let error: string | null = null;
      let retryAfter: string | null = null;
      try {
        const res = await fetch(ep.url, {
          method: "POST",
          headers: await webhookHeaders(ep.secrets, d.id, Math.floor(Date.now() / 1000), d.payload),
          body: d.payload,
          redirect: "manual",
          signal: AbortSignal.timeout(15_000),
        });
        httpStatus = res.status;
        retryAfter = res.headers.get("retry-after");
        if (httpStatus >= 300 && httpStatus < 400) error = `HTTP ${httpStatus}: redirects are not followed; register the URL that answers`;
        await res.body?.cancel();
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      if (httpStatus !== null && httpStatus >= 200 && httpStatus < 300) {
        await recordAttempt(env.DB, d.id, { status: "delivered", httpStatus, error: null });
        return m.ack();
      }
      if (httpStatus === 410) {
        await setEndpointStatus(env.DB, ep.id, "disabled", "the endpoint answered 410 Gone");
        await recordAttempt(env.DB, d.id, { status: "cancelled", httpStatus, error: "410 Gone: endpoint disabled" });
        return m.ack();
      }
      if (attempt >= MAX_ATTEMPTS) {
        await recordAttempt(env.DB, d.id, { status: "dead", httpStatus, error: error ?? `HTTP ${httpStatus}` });
        return m.ack();
      }
      await recordAttempt(env.DB, d.id, { status: "pending", httpStatus, error: error ?? `HTTP ${httpStatus}` });
      m.retry({ delaySeconds: retryDelaySeconds(attempt, base, retryAfter, Math.random) });
    }),
  );
}
