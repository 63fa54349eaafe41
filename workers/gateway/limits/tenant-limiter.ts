import { DurableObject } from "cloudflare:workers";
import { TenantLimiter, type Admission, type Decision, type LimitRecord } from "../../../src/limits/limiter.js";
import type { Env } from "../env.js";

const recordKey = (r: { scope: string; id: string }) => `r/${r.scope}/${r.id}`;

/**
 * One Durable Object per tenant holds the tenant's and its keys' windows and leases. Every admission and
 * settlement for a tenant runs here, one at a time, so limits are exact and global (see README: the trade-off
 * against per-location leases). Each admission and settlement writes only its own small records to the
 * object's storage, so an evicted or restarted object rebuilds its windows instead of forgetting them.
 */
export class TenantLimiterObject extends DurableObject<Env> {
  private limiter = new TenantLimiter();
  private changes = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      const stored = await ctx.storage.list<LimitRecord>({ prefix: "r/" });
      this.limiter = TenantLimiter.fromRecords([...stored.values()]);
    });
  }

  async admit(a: Admission): Promise<Decision> {
    const d = this.limiter.admit(a);
    if (d.ok) await this.write(this.limiter.records(a.requestId), a.now);
    return d;
  }

  /** A running request's lease is extended (see TenantLimiter.renew); false once it holds none. */
  async renew(requestId: string, now: number, leaseMs: number): Promise<boolean> {
    if (!this.limiter.renew(requestId, now, leaseMs)) return false;
    await this.write(this.limiter.records(requestId), now);
    return true;
  }

  async settle(requestId: string, tokens: number): Promise<boolean> {
    const scopes = this.limiter.scopesOf(requestId);
    if (!this.limiter.settle(requestId, tokens)) return false;
    await this.write(this.limiter.settledRecords(requestId, scopes), Date.now());
    return true;
  }

  private async write(records: LimitRecord[], now: number): Promise<void> {
    await this.ctx.storage.put(Object.fromEntries(records.map((r) => [recordKey(r), r])));
    if (++this.changes % 200 === 0) {
      const dead = this.limiter.compact(now).map(recordKey);
      for (let i = 0; i < dead.length; i += 128) await this.ctx.storage.delete(dead.slice(i, i + 128));
    }
  }
}
