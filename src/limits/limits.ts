import { z } from "zod";

/** Per-minute request and token limits and a concurrency cap; null or absent = unlimited. */
export const LimitsSchema = z.object({
  rpm: z.number().int().positive().nullish(),
  tpm: z.number().int().positive().nullish(),
  max_concurrent: z.number().int().positive().nullish(),
});
export type Limits = z.infer<typeof LimitsSchema>;

export const isLimited = (l: Limits | null | undefined): l is Limits => !!l && (l.rpm != null || l.tpm != null || l.max_concurrent != null);

/**
 * Tokens to reserve for a request at admission: an upper estimate of the prompt (UTF-8 bytes / 3 — tokenizers
 * average 3.5–4.5 bytes per token on text, so this errs high) plus the completion budget. Settlement replaces
 * the reservation with the real usage when the response ends.
 */
export function estimateReservation(promptBytes: number, maxTokens: number): number {
  return Math.ceil(promptBytes / 3) + maxTokens;
}

/** A neutral prompt estimate (≈ 4 bytes per token) for usage records when a backend's usage never arrived. */
export const estimatePromptTokens = (promptBytes: number): number => Math.ceil(promptBytes / 4);
