import { z } from "zod";

/**
 * Token usage as OpenAI reports it, plus DeepSeek's cache fields (`prompt_cache_hit_tokens` /
 * `prompt_cache_miss_tokens`), which DeepSeek's own API and our pods both emit.
 */
export const UsageSchema = z.looseObject({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  total_tokens: z.number().int().nonnegative(),
  prompt_tokens_details: z
    .looseObject({ cached_tokens: z.number().int().nonnegative().optional() })
    .nullish(),
  completion_tokens_details: z.looseObject({}).nullish(),
  prompt_cache_hit_tokens: z.number().int().nonnegative().optional(),
  prompt_cache_miss_tokens: z.number().int().nonnegative().optional(),
});
export type Usage = z.infer<typeof UsageSchema>;

export function cachedTokens(u: Usage): number {
  return u.prompt_tokens_details?.cached_tokens ?? u.prompt_cache_hit_tokens ?? 0;
}

export function makeUsage(promptTokens: number, completionTokens: number, cached = 0): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cached },
    prompt_cache_hit_tokens: cached,
    prompt_cache_miss_tokens: promptTokens - cached,
  };
}
