import { z } from "zod";

/**
 * One request's usage, as metered at the edge and kept in the ledger. `event_id` is the request id: the
 * same request is recorded once however often its record is delivered.
 */
export const UsageRecordSchema = z.object({
  event_id: z.string().min(1),
  tenant_id: z.string(),
  key_id: z.string(),
  model: z.string(),
  region: z.string().nullable(),
  pod: z.string().nullable(),
  /** completed; cancelled by the client; failed mid-stream; answered from the edge cache. */
  status: z.enum(["completed", "cancelled", "failed", "cache_hit"]),
  stream: z.boolean(),
  prompt_tokens: z.number().int().nonnegative(),
  cached_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  /** True when the backend's usage never arrived and the counts are the edge's estimate of what was delivered. */
  estimated: z.boolean(),
  cost_micros: z.number().int().nonnegative(),
  started_at: z.number().int(),
  ended_at: z.number().int(),
});
export type UsageRecord = z.infer<typeof UsageRecordSchema>;
