import type { Context } from "hono";
import type { CatalogEntry } from "../../../src/config/catalog.js";
import { costMicros, hitCostMicros, type TokenCounts } from "../../../src/metering/pricing.js";
import type { UsageRecord } from "../../../src/metering/usage-record.js";
import type { AppEnv } from "../env.js";

export interface Metered {
  status: UsageRecord["status"];
  stream: boolean;
  counts: TokenCounts;
  estimated: boolean;
  region: string | null;
  pod: string | null;
  startedMs: number;
}

/** Sends one request's usage record to the metering queue (the ledger consumer makes it idempotent). */
export function meter(c: Context<AppEnv>, entry: CatalogEntry, m: Metered): Promise<unknown> {
  const auth = c.get("auth");
  const record: UsageRecord = {
    event_id: c.get("requestId"),
    tenant_id: auth.tenantId,
    key_id: auth.keyId,
    model: entry.id,
    region: m.region,
    pod: m.pod,
    status: m.status,
    stream: m.stream,
    prompt_tokens: m.counts.prompt,
    cached_tokens: m.counts.cached,
    completion_tokens: m.counts.completion,
    estimated: m.estimated,
    cost_micros: m.status === "cache_hit" ? hitCostMicros(m.counts, entry.pricing) : costMicros(m.counts, entry.pricing),
    started_at: Math.floor(m.startedMs / 1000),
    ended_at: Math.floor(Date.now() / 1000),
  };
  return c.env.USAGE_QUEUE.send(record).catch((e: unknown) =>
    console.error(JSON.stringify({ msg: "usage record not queued", request_id: record.event_id, error: String(e) })),
  );
}
