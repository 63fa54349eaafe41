import type { Limits } from "./limits.js";

/**
 * Exact rate limiting over one tenant's state (it runs inside that tenant's Durable Object, one request at a
 * time). Each scope (the tenant, and each of its keys) keeps sliding 60-second windows of admitted requests and
 * of reserved tokens, plus concurrency leases. A request is admitted only if every scope it belongs to has
 * room; then it is recorded in all of them at once.
 */
export const WINDOW_MS = 60_000;

interface TokenEvent {
  at: number;
  tokens: number;
  id: string;
}

interface Scope {
  requests: number[]; // admission times, ascending
  tokens: TokenEvent[]; // reservations (later: real usage), ascending by time
  leases: Map<string, number>; // request id → lease expiry
}

export type LimitKind = "requests" | "tokens" | "concurrency";

/** What durable storage keeps per (scope, admitted request). */
export interface LimitRecord {
  scope: string;
  id: string;
  at: number;
  tokens: number;
  leaseUntil: number | null;
  /** Not yet settled. */
  open: boolean;
}

export interface ScopeLimits {
  name: string; // "tenant" | "key"
  id: string;
  limits: Limits;
}

export interface Admission {
  requestId: string;
  tokens: number;
  now: number;
  leaseMs: number;
  scopes: ScopeLimits[];
}

/** What the rate-limit headers report: the tightest scope for each dimension. */
export interface LimitState {
  requests?: { limit: number; remaining: number; resetMs: number };
  tokens?: { limit: number; remaining: number; resetMs: number };
}

export type Decision =
  | { ok: true; state: LimitState }
  | { ok: false; kind: LimitKind; scope: ScopeLimits; limit: number; used: number; requested: number; retryAfterMs: number | null; state: LimitState };

export class TenantLimiter {
  private readonly scopes = new Map<string, Scope>();
  /** Which scopes each admitted request is recorded in (for settlement). */
  private readonly admitted = new Map<string, string[]>();
  /** Token events that left their window: their durable records go once their lease is gone too. */
  private expired: { scope: string; id: string }[] = [];

  private scope(key: string): Scope {
    let s = this.scopes.get(key);
    if (!s) this.scopes.set(key, (s = { requests: [], tokens: [], leases: new Map() }));
    return s;
  }

  private prune(s: Scope, now: number, key: string): void {
    const cut = now - WINDOW_MS;
    while (s.requests.length && s.requests[0]! <= cut) s.requests.shift();
    while (s.tokens.length && s.tokens[0]!.at <= cut) this.expired.push({ scope: key, id: s.tokens.shift()!.id });
    for (const [id, exp] of s.leases) if (exp <= now) s.leases.delete(id);
  }

  admit(a: Admission): Decision {
    const scoped = a.scopes.map((sl) => ({ sl, key: `${sl.name}:${sl.id}`, s: this.scope(`${sl.name}:${sl.id}`) }));
    for (const { s, key } of scoped) this.prune(s, a.now, key);
    for (const { sl, s } of scoped) {
      const { rpm, tpm, max_concurrent } = sl.limits;
      if (rpm != null && s.requests.length >= rpm) {
        return this.refuse("requests", sl, rpm, s.requests.length, 1, s.requests[s.requests.length - rpm]! + WINDOW_MS - a.now, a);
      }
      const used = s.tokens.reduce((n, e) => n + e.tokens, 0);
      if (tpm != null && used + a.tokens > tpm) {
        return this.refuse("tokens", sl, tpm, used, a.tokens, a.tokens > tpm ? null : tokensFreeAt(s.tokens, used + a.tokens - tpm) - a.now, a);
      }
      if (max_concurrent != null && s.leases.size >= max_concurrent) {
        // Leases end when requests finish, which the limiter cannot foresee: a short, fixed hint.
        return this.refuse("concurrency", sl, max_concurrent, s.leases.size, 1, 250, a);
      }
    }
    for (const { s } of scoped) {
      s.requests.push(a.now);
      s.tokens.push({ at: a.now, tokens: a.tokens, id: a.requestId });
      s.leases.set(a.requestId, a.now + a.leaseMs);
    }
    this.admitted.set(a.requestId, scoped.map(({ sl }) => `${sl.name}:${sl.id}`));
    return { ok: true, state: this.state(a.scopes, a.now) };
  }

  /** The request ended: its reservation becomes its real token count and its lease is released. */
  settle(requestId: string, tokens: number): boolean {
    const keys = this.admitted.get(requestId);
    if (!keys) return false; // unknown or already settled: settlement is idempotent
    this.admitted.delete(requestId);
    for (const k of keys) {
      const s = this.scopes.get(k);
      if (!s) continue;
      const e = s.tokens.find((x) => x.id === requestId);
      if (e) e.tokens = Math.max(0, tokens);
      s.leases.delete(requestId);
    }
    return true;
  }

  /**
   * A request still running keeps its concurrency slot: its unexpired leases now end `leaseMs` after `now`.
   * False when it holds none any more (settled, or its lease ran out, so its slot may be someone else's now).
   */
  renew(requestId: string, now: number, leaseMs: number): boolean {
    let held = false;
    for (const k of this.admitted.get(requestId) ?? []) {
      const s = this.scopes.get(k);
      const exp = s?.leases.get(requestId);
      if (s === undefined || exp === undefined || exp <= now) continue;
      s.leases.set(requestId, Math.max(exp, now + leaseMs));
      held = true;
    }
    return held;
  }

  /** Current state for headers (after pruning). */
  state(scopes: ScopeLimits[], now: number): LimitState {
    const out: LimitState = {};
    for (const sl of scopes) {
      const key = `${sl.name}:${sl.id}`;
      const s = this.scope(key);
      this.prune(s, now, key);
      if (sl.limits.rpm != null) {
        const remaining = Math.max(0, sl.limits.rpm - s.requests.length);
        const resetMs = s.requests.length ? s.requests[s.requests.length - 1]! + WINDOW_MS - now : 0;
        if (!out.requests || remaining < out.requests.remaining) out.requests = { limit: sl.limits.rpm, remaining, resetMs };
      }
      if (sl.limits.tpm != null) {
        const used = s.tokens.reduce((n, e) => n + e.tokens, 0);
        const remaining = Math.max(0, sl.limits.tpm - used);
        const last = s.tokens.findLast((e) => e.tokens > 0);
        const resetMs = last ? last.at + WINDOW_MS - now : 0;
        if (!out.tokens || remaining < out.tokens.remaining) out.tokens = { limit: sl.limits.tpm, remaining, resetMs };
      }
    }
    return out;
  }

  /**
   * One durable record per (scope, request): enough to rebuild every window and lease after a restart. The
   * owner writes the records an admission or settlement touches, not the whole state.
   */
  records(requestId: string): LimitRecord[] {
    const keys = this.admitted.get(requestId) ?? [];
    return keys.flatMap((k) => {
      const s = this.scopes.get(k);
      // A renewed lease outlives its token event's window: the record then keeps only the lease.
      const e = s?.tokens.find((x) => x.id === requestId);
      return s ? [{ scope: k, id: requestId, at: e?.at ?? 0, tokens: e?.tokens ?? 0, leaseUntil: s.leases.get(requestId) ?? null, open: true }] : [];
    });
  }

  /** Records after a settlement (the lease is gone, the tokens are real). */
  settledRecords(requestId: string, scopes: string[]): LimitRecord[] {
    return scopes.map((k) => {
      // A long request's token event may have left the window already: only "no lease any more" matters then.
      const e = this.scopes.get(k)?.tokens.find((x) => x.id === requestId);
      return { scope: k, id: requestId, at: e?.at ?? 0, tokens: e?.tokens ?? 0, leaseUntil: null, open: false };
    });
  }

  scopesOf(requestId: string): string[] {
    return this.admitted.get(requestId) ?? [];
  }

  static fromRecords(records: LimitRecord[]): TenantLimiter {
    const l = new TenantLimiter();
    for (const r of [...records].sort((a, b) => a.at - b.at)) {
      const s = l.scope(r.scope);
      s.requests.push(r.at);
      s.tokens.push({ at: r.at, tokens: r.tokens, id: r.id });
      if (r.leaseUntil !== null) s.leases.set(r.id, r.leaseUntil);
      if (r.open) l.admitted.set(r.id, [...(l.admitted.get(r.id) ?? []), r.scope]);
    }
    return l;
  }

  /**
   * Drops what no window or lease needs any more; returns the (scope, request) records that can be deleted
   * from durable storage. Memory and storage stay bounded by the last minute's activity plus open leases.
   */
  compact(now: number): { scope: string; id: string }[] {
    for (const [k, s] of this.scopes) this.prune(s, now, k);
    const stillLeased = (x: { scope: string; id: string }) => this.scopes.get(x.scope)?.leases.has(x.id) ?? false;
    const dead = this.expired.filter((x) => !stillLeased(x));
    this.expired = this.expired.filter(stillLeased);
    for (const [k, s] of this.scopes) {
      if (!s.requests.length && !s.tokens.length && !s.leases.size) this.scopes.delete(k);
    }
    for (const [id, keys] of this.admitted) {
      if (keys.every((k) => !this.scopes.get(k)?.leases.has(id))) this.admitted.delete(id);
    }
    return dead;
  }

  private refuse(kind: LimitKind, scope: ScopeLimits, limit: number, used: number, requested: number, retryAfterMs: number | null, a: Admission): Decision {
    return { ok: false, kind, scope, limit, used, requested, retryAfterMs: retryAfterMs === null ? null : Math.max(1, Math.ceil(retryAfterMs)), state: this.state(a.scopes, a.now) };
  }
}

/** When enough of the window's token events will have expired to free `needed` tokens. */
function tokensFreeAt(events: TokenEvent[], needed: number): number {
  let freed = 0;
  for (const e of events) {
    freed += e.tokens;
    if (freed >= needed) return e.at + WINDOW_MS;
  }
  return events.length ? events[events.length - 1]!.at + WINDOW_MS : 0;
}
