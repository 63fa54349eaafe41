import type { UsageRecord } from "../../../src/metering/usage-record.js";

export const hourOf = (unixSeconds: number): number => unixSeconds - (unixSeconds % 3600);

/**
 * Writes records to the ledger in one transaction. A record already in the ledger (a redelivered batch, a
 * retried message) inserts nothing and — because each aggregate update only applies when its event row was
 * just inserted — adds nothing to the hourly aggregates either. Returns the records that were new.
 */
export async function writeLedger(db: D1Database, records: UsageRecord[]): Promise<UsageRecord[]> {
  if (records.length === 0) return [];
  const now = Math.floor(Date.now() / 1000);
  const statements: D1PreparedStatement[] = [];
  for (const r of records) {
    statements.push(
      db
        .prepare(
          `INSERT INTO usage_events (event_id, tenant_id, key_id, model, region, pod, status, stream, prompt_tokens, cached_tokens,
             completion_tokens, estimated, cost_micros, started_at, ended_at, recorded_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING event_id`,
        )
        .bind(r.event_id, r.tenant_id, r.key_id, r.model, r.region, r.pod, r.status, r.stream ? 1 : 0, r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.estimated ? 1 : 0, r.cost_micros, r.started_at, r.ended_at, now),
      // changes() is the row count of the INSERT just above (same transaction, same connection).
      db
        .prepare(
          `INSERT INTO usage_hourly (tenant_id, model, hour, requests, prompt_tokens, cached_tokens, completion_tokens, cost_micros)
           SELECT ?, ?, ?, 1, ?, ?, ?, ? WHERE changes() = 1
           ON CONFLICT (tenant_id, model, hour) DO UPDATE SET
             requests = requests + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens, cached_tokens = cached_tokens + excluded.cached_tokens,
             completion_tokens = completion_tokens + excluded.completion_tokens, cost_micros = cost_micros + excluded.cost_micros`,
        )
        .bind(r.tenant_id, r.model, hourOf(r.ended_at), r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.cost_micros),
    );
  }
  const results = await db.batch<{ event_id: string }>(statements);
  const inserted = new Set(results.filter((_, i) => i % 2 === 0).flatMap((r) => r.results.map((x) => x.event_id)));
  return records.filter((r) => inserted.has(r.event_id));
}
