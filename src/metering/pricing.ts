import { z } from "zod";
import type { Usage } from "../openai/usage.js";

/** Prices per million tokens, in USD (prompt tokens served from cache are priced separately, like DeepSeek's). */
export const PriceSchema = z.object({
  input_per_mtok: z.number().nonnegative(),
  cached_input_per_mtok: z.number().nonnegative(),
  output_per_mtok: z.number().nonnegative(),
});
export type Price = z.infer<typeof PriceSchema>;

export interface TokenCounts {
  prompt: number;
  cached: number;
  completion: number;
}

/**
 * Cost in micro-dollars (an integer; a price per million tokens × tokens is exactly micro-dollars), so
 * ledger sums never accumulate floating-point error.
 */
export function costMicros(t: TokenCounts, p: Price | null | undefined): number {
  if (!p) return 0;
  const miss = Math.max(0, t.prompt - t.cached);
  return Math.round(miss * p.input_per_mtok + t.cached * p.cached_input_per_mtok + t.completion * p.output_per_mtok);
}

export function countsOf(u: Usage): TokenCounts {
  const cached = u.prompt_tokens_details?.cached_tokens ?? u.prompt_cache_hit_tokens ?? 0;
  return { prompt: u.prompt_tokens, cached, completion: u.completion_tokens };
}

/** An edge cache hit used no GPU: every token it returns is priced at the cached-input rate. */
export function hitCostMicros(t: TokenCounts, p: Price | null | undefined): number {
  return p ? Math.round((t.prompt + t.completion) * p.cached_input_per_mtok) : 0;
}
