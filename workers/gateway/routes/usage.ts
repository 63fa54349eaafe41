import { Hono, type Context } from "hono";
import { z } from "zod";
import { validateBody } from "../../../src/openai/validate.js";
import { eventsOnly, splitByHours } from "../../../src/metering/report-range.js";
import { getTenant } from "../admin/store.js";
import type { AppEnv } from "../env.js";

/**
 * Usage reports from the ledger: totals for a time range, optionally grouped by model, key or hour. Whole hours
 * come from the hourly aggregates, so a long range stays cheap; grouping by key reads the events.
 * `GET /v1/usage` answers for the calling key's own tenant only; the admin route for any tenant.
 */
const QuerySchema = z.object({
  from: z.coerce.number().int().nonnegative().default(0),
  to: z.coerce.number().int().positive().optional(),
  group_by: z.enum(["model", "key", "hour"]).optional(),
});

/** Each grouping as read from the hourly aggregates (null: events only, as they hold no key) and from the events. */
const GROUP = {
  model: { hourly: "model", events: "model" },
  key: { hourly: null, events: "key_id" },
  hour: { hourly: "hour", events: "ended_at - (ended_at % 3600)" },
} as const;
const SUMS = "prompt_tokens, cached_tokens, completion_tokens, cost_micros";

async function report(c: Context<AppEnv>, tenant: string): Promise<Response> {
  const q = validateBody(QuerySchema, c.req.query());
  const to = q.to ?? Math.floor(Date.now() / 1000) + 1;
  const group = q.group_by ? GROUP[q.group_by] : { hourly: "NULL", events: "NULL" };
  // Whole hours from the aggregates (written with the events, in one transaction), the ends from the events.
  const range = group.hourly === null ? eventsOnly(q.from, to) : splitByHours(q.from, to);
  const parts: string[] = [];
  const binds: (string | number)[] = [];
  if (range.hours) {
    parts.push(`SELECT ${group.hourly} AS bucket, requests, ${SUMS} FROM usage_hourly WHERE tenant_id = ? AND hour >= ? AND hour < ?`);
    binds.push(tenant, ...range.hours);
  }
  for (const [a, b] of range.edges) {
    parts.push(`SELECT ${group.events} AS bucket, 1 AS requests, ${SUMS} FROM usage_events WHERE tenant_id = ? AND ended_at >= ? AND ended_at < ?`);
    binds.push(tenant, a, b);
  }
  const { results } = parts.length
    ? await c.env.DB.prepare(
        `SELECT bucket, SUM(requests) AS requests, SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,
                SUM(completion_tokens) AS completion_tokens, SUM(cost_micros) AS cost_micros
           FROM (${parts.join(" UNION ALL ")}) GROUP BY bucket ORDER BY bucket`,
      )
        .bind(...binds)
        .all<Record<string, number | string | null>>()
    : { results: [] };
  const data = results
    .filter((r) => Number(r.requests) > 0)
    .map((r) => ({
      ...(q.group_by ? { [q.group_by]: r.bucket } : {}),
      requests: Number(r.requests),
      prompt_tokens: Number(r.prompt_tokens ?? 0),
      cached_tokens: Number(r.cached_tokens ?? 0),
      completion_tokens: Number(r.completion_tokens ?? 0),
      cost_usd: Number(r.cost_micros ?? 0) / 1e6,
    }));
  return c.json({ object: "usage_report", tenant_id: tenant, from: q.from, to, group_by: q.group_by ?? null, data });
}

export const tenantUsage = new Hono<AppEnv>();
tenantUsage.get("/", (c) => report(c, c.get("auth").tenantId));

export const adminUsage = new Hono<AppEnv>();
adminUsage.get("/", async (c) => {
  const tenant = c.req.param("tenant")!;
  await getTenant(c.env.DB, tenant);
  return report(c, tenant);
});
