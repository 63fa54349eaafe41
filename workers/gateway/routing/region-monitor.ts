import { DurableObject } from "cloudflare:workers";
import { backendUrl } from "../../../src/routing/backend-url.js";
import { closedBreaker, onFailure, onSuccess, shouldProbe, type Breaker } from "../../../src/routing/breaker.js";
import type { Pod, PodHealth, RegionSnapshot } from "../../../src/routing/registry.js";
import type { Env } from "../env.js";
import { podsOfRegion } from "./registry-store.js";

/**
 * One Durable Object per region watches that region's backends: on an alarm every HEALTH_INTERVAL_MS it probes
 * `/health` (and `/load` of our pods), keeps a circuit breaker per backend, and hands the edge a snapshot.
 * Polling from one place per region (instead of every edge isolate) keeps probe traffic independent of the
 * number of edge locations; edges also report failures they see, which open a breaker at once.
 */
export class RegionMonitor extends DurableObject<Env> {
  private region: string | null = null;
  private readonly breakers = new Map<string, Breaker>();
  private readonly health = new Map<string, PodHealth>();
  private probing: Promise<number> | null = null;
  /** An alarm is known to be scheduled (so a look at the region need not read it from storage). */
  private watching = false;

  private get intervalMs(): number {
    return Number(this.env.HEALTH_INTERVAL_MS || 2000);
  }

  /** The region's current view; the first call starts the monitoring alarm and waits for one probe round. */
  async snapshot(region: string): Promise<RegionSnapshot> {
    await this.adopt(region);
    if (this.health.size === 0) await this.probeAll();
    return { region, takenAt: Date.now(), pods: [...this.health.values()] };
  }

  /** An edge saw this backend fail (connect error, 5xx, timeout): take it out now, probe it on the back-off. */
  async report(region: string, podId: string): Promise<void> {
    await this.adopt(region);
    const now = Date.now();
    const b = onFailure(this.breakers.get(podId) ?? closedBreaker(), now);
    this.breakers.set(podId, b);
    const h = this.health.get(podId);
    this.health.set(podId, { id: podId, running: 0, waiting: 0, ...h, healthy: false, breaker: "open", checkedAt: now, error: "reported by edge" });
  }

  override async alarm(): Promise<void> {
    this.region ??= (await this.ctx.storage.get<string>("region")) ?? null;
    if (!this.region) return;
    // A region without backends (emptied, or deleted) is not watched: the next snapshot or report starts again.
    this.watching = (await this.probeAll()) > 0;
    if (this.watching) await this.ctx.storage.setAlarm(Date.now() + this.intervalMs);
  }

  private async adopt(region: string): Promise<void> {
    if (this.region !== region) {
      this.region = region;
      await this.ctx.storage.put("region", region);
    }
    if (this.watching) return;
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + this.intervalMs);
    this.watching = true;
  }

  /** One probe round over the region's backends; resolves with how many it has. */
  private probeAll(): Promise<number> {
    // Concurrent callers share one round.
    this.probing ??= this.doProbeAll().finally(() => (this.probing = null));
    return this.probing;
  }

  private async doProbeAll(): Promise<number> {
    const pods = await podsOfRegion(this.env.DB, this.region!);
    const known = new Set(pods.map((p) => p.id));
    for (const id of [...this.health.keys()]) if (!known.has(id)) this.health.delete(id);
    const now = Date.now();
    await Promise.all(pods.filter((p) => p.enabled && shouldProbe(this.breakers.get(p.id) ?? closedBreaker(), now)).map((p) => this.probe(p)));
    return pods.length;
  }

  private async probe(pod: Pod): Promise<void> {
    const timeout = Math.min(this.intervalMs, 2000);
    let next: PodHealth;
    try {
      // As for requests (upstream/forward.ts), a redirect is not followed: a 3xx is not a healthy answer.
      const health = await fetch(backendUrl(pod.url, "/health"), { signal: AbortSignal.timeout(timeout), redirect: "manual" });
      await health.body?.cancel();
      if (!health.ok) throw new Error(`/health answered ${health.status}`);
      let running = 0;
      let waiting = 0;
      if (pod.kind === "moe-pod") {
        const load = await fetch(backendUrl(pod.url, "/load"), { signal: AbortSignal.timeout(timeout), redirect: "manual" });
        if (load.ok) {
          const l = (await load.json()) as { running?: number; waiting?: number };
          running = l.running ?? 0;
          waiting = l.waiting ?? 0;
        } else await load.body?.cancel();
      }
      this.breakers.set(pod.id, onSuccess(this.breakers.get(pod.id) ?? closedBreaker()));
      next = { id: pod.id, healthy: true, running, waiting, checkedAt: Date.now(), breaker: "closed" };
    } catch (e) {
      const b = onFailure(this.breakers.get(pod.id) ?? closedBreaker(), Date.now());
      this.breakers.set(pod.id, b);
      next = { id: pod.id, healthy: false, running: 0, waiting: 0, checkedAt: Date.now(), breaker: "open", error: e instanceof Error ? e.message : String(e) };
    }
    this.health.set(pod.id, next);
  }
}
