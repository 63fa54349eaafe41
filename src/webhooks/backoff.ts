/**
 * Delivery retry schedule: exponential from `baseSeconds` with full jitter, capped, spanning hours; a receiver's
 * Retry-After (seconds or HTTP date) is honoured when longer. After MAX_ATTEMPTS the delivery is dead-lettered.
 */
export const MAX_ATTEMPTS = 15;
export const MAX_DELAY_SECONDS = 4 * 3600;

export function retryDelaySeconds(attempt: number, baseSeconds: number, retryAfter: string | null, random: () => number, now = Date.now()): number {
  const exp = Math.min(MAX_DELAY_SECONDS, baseSeconds * 2 ** Math.max(0, attempt - 1));
  // Full jitter over the upper half keeps retries spread without ever retrying too early.
  const jittered = Math.round(exp / 2 + (random() * exp) / 2);
  const hinted = parseRetryAfter(retryAfter, now);
  return Math.min(MAX_DELAY_SECONDS * 3, Math.max(jittered, hinted ?? 0));
}

export function parseRetryAfter(v: string | null, now: number): number | null {
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, Math.ceil((t - now) / 1000));
}
