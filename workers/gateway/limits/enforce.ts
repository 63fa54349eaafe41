import type { Context } from "hono";
import { formatDuration } from "../../../src/limits/duration.js";
import type { Decision, LimitState, ScopeLimits } from "../../../src/limits/limiter.js";
import { isLimited } from "../../../src/limits/limits.js";
import { ApiError } from "../../../src/openai/errors.js";
import type { AppEnv } from "../env.js";

/**
 * An admitted request's hold on its tenant's limits: settle it with the real token count when it ends. The
 * returned promise must be kept alive (waitUntil) until it resolves.
 */
export interface LimitTicket {
  headers: Record<string, string>;
  settle(tokens: number): Promise<void>;
}

/** OpenAI's rate-limit headers for the tightest applicable limits. */
export function limitHeaders(s: LimitState): Record<string, string> {
  const h: Record<string, string> = {};
  if (s.requests) {
    h["x-ratelimit-limit-requests"] = String(s.requests.limit);
    h["x-ratelimit-remaining-requests"] = String(s.requests.remaining);
    h["x-ratelimit-reset-requests"] = formatDuration(s.requests.resetMs);
  }
  if (s.tokens) {
    h["x-ratelimit-limit-tokens"] = String(s.tokens.limit);
    h["x-ratelimit-remaining-tokens"] = String(s.tokens.remaining);
    h["x-ratelimit-reset-tokens"] = formatDuration(s.tokens.resetMs);
  }
  return h;
}

const LABEL = { requests: "requests per minute (RPM)", tokens: "tokens per minute (TPM)", concurrency: "concurrent requests" } as const;

function refusal(d: Extract<Decision, { ok: false }>, display: string): ApiError {
  const where = d.scope.name === "key" ? `on key ${display}` : `on tenant ${d.scope.id}`;
  const retry = d.retryAfterMs === null ? "" : ` Please try again in ${formatDuration(d.retryAfterMs)}.`;
  const message =
    d.retryAfterMs === null
      ? `Request too large for ${LABEL[d.kind]} ${where}: Limit ${d.limit}, Requested ${d.requested}. Reduce max_tokens or the prompt.`
      : `Rate limit reached for ${LABEL[d.kind]} ${where}: Limit ${d.limit}, Used ${d.used}, Requested ${d.requested}.${retry}`;
  const headers = limitHeaders(d.state);
  if (d.retryAfterMs !== null) {
    headers["retry-after"] = String(Math.ceil(d.retryAfterMs / 1000));
    headers["retry-after-ms"] = String(d.retryAfterMs);
  }
  return new ApiError(429, message, { type: d.kind === "tokens" ? "tokens" : "requests", code: "rate_limit_exceeded", headers });
}

/**
 * Admits a request against its tenant's and key's limits (one call to the tenant's limiter object), or throws
 * the 429 the client should see. Unlimited tenants and keys skip the call entirely.
 */
export async function admit(c: Context<AppEnv>, reservation: number): Promise<LimitTicket | null> {
  const auth = c.get("auth");
  const scopes: ScopeLimits[] = [];
  if (isLimited(auth.tenantLimits)) scopes.push({ name: "tenant", id: auth.tenantId, limits: auth.tenantLimits });
  if (isLimited(auth.keyLimits)) scopes.push({ name: "key", id: auth.keyId, limits: auth.keyLimits });
  if (scopes.length === 0) return null;
  const stub = c.env.TENANT_LIMITER.get(c.env.TENANT_LIMITER.idFromName(auth.tenantId));
  const requestId = c.get("requestId");
  const leaseMs = c.get("settings").limitLeaseMs;
  // While the request runs its lease is renewed at half its length, so a generation longer than LIMIT_LEASE_MS
  // keeps its concurrency slot; the lease only ever runs out for a request whose isolate is gone.
  let renewal: ReturnType<typeof setInterval> | undefined;
  let settled: Promise<void> | null = null;
  const settle = (tokens: number) => {
    clearInterval(renewal);
    return (settled ??= stub.settle(requestId, tokens).then(
      () => {},
      (e: unknown) => console.error(JSON.stringify({ msg: "limit settlement failed", request_id: requestId, error: String(e) })),
    ));
  };
  const decision = stub.admit({ requestId, tokens: reservation, now: Date.now(), leaseMs, scopes });
  // A client that leaves during this call tears the handler down before it holds a ticket (workerd cancels the
  // await), and nothing else would release the lease before LIMIT_LEASE_MS: the background does it then.
  const signal = c.req.raw.signal;
  c.executionCtx.waitUntil(decision.then((d) => (d.ok && signal.aborted ? settle(0) : undefined), () => undefined));
  const d = await decision;
  if (!d.ok) throw refusal(d, auth.display);
  if (!settled) {
    renewal = setInterval(() => {
      stub.renew(requestId, Date.now(), leaseMs).then(
        (held) => held || clearInterval(renewal),
        (e: unknown) => console.error(JSON.stringify({ msg: "lease renewal failed", request_id: requestId, error: String(e) })),
      );
    }, Math.max(1, Math.floor(leaseMs / 2)));
  }
  return { headers: limitHeaders(d.state), settle };
}
