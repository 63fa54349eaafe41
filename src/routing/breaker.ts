/**
 * Per-pod circuit breaker. Closed: in rotation. A failure opens it (out of rotation) until `retryAt`; then the
 * next probe is the half-open trial: success closes it, failure reopens it with a doubled back-off (capped).
 */
export interface Breaker {
  state: "closed" | "open";
  failures: number;
  retryAt: number;
  backoffMs: number;
}

export const BREAKER_MIN_BACKOFF_MS = 1_000;
export const BREAKER_MAX_BACKOFF_MS = 15_000;

export const closedBreaker = (): Breaker => ({ state: "closed", failures: 0, retryAt: 0, backoffMs: BREAKER_MIN_BACKOFF_MS });

export function onSuccess(_b: Breaker): Breaker {
  return closedBreaker();
}

export function onFailure(b: Breaker, now: number): Breaker {
  const backoffMs = b.state === "open" ? Math.min(b.backoffMs * 2, BREAKER_MAX_BACKOFF_MS) : BREAKER_MIN_BACKOFF_MS;
  return { state: "open", failures: b.failures + 1, retryAt: now + backoffMs, backoffMs };
}

/** Whether the monitor should probe this pod now (always when closed; after the back-off when open). */
export const shouldProbe = (b: Breaker, now: number): boolean => b.state === "closed" || now >= b.retryAt;
