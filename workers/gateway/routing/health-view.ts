import type { PodHealth, RegionSnapshot } from "../../../src/routing/registry.js";
import type { Env } from "../env.js";

/**
 * The edge's copy of every region's health snapshot, per isolate. Fresh enough (HEALTH_SNAPSHOT_MS) → used as
 * is; stale → used as is while a refresh runs in the background, so the hot path never waits on the network
 * except for a region it has never seen. Failures the edge observes itself apply at once.
 */
const snapshots = new Map<string, { snap: RegionSnapshot; at: number; refreshing: boolean }>();
const locallyDown = new Map<string, number>();

function monitor(env: Env, region: string) {
  return env.REGION_MONITOR.get(env.REGION_MONITOR.idFromName(region));
}

async function refresh(env: Env, region: string): Promise<void> {
  const entry = snapshots.get(region);
  if (entry) entry.refreshing = true;
  try {
    const snap = await monitor(env, region).snapshot(region);
    snapshots.set(region, { snap, at: Date.now(), refreshing: false });
  } catch (e) {
    if (entry) entry.refreshing = false;
    console.error(JSON.stringify({ msg: "health snapshot failed", region, error: String(e) }));
  }
}

export async function healthFor(env: Env, regions: string[], maxAgeMs: number, waitUntil: (p: Promise<unknown>) => void): Promise<Map<string, PodHealth>> {
  const now = Date.now();
  const missing = regions.filter((r) => !snapshots.has(r));
  if (missing.length) await Promise.all(missing.map((r) => refresh(env, r)));
  const out = new Map<string, PodHealth>();
  for (const r of regions) {
    const entry = snapshots.get(r);
    if (!entry) continue;
    if (now - entry.at > maxAgeMs && !entry.refreshing) waitUntil(refresh(env, r));
    for (const p of entry.snap.pods) out.set(p.id, p);
  }
  for (const [id, until] of locallyDown) {
    if (until < now) locallyDown.delete(id);
    else out.set(id, { ...(out.get(id) ?? { id, running: 0, waiting: 0, checkedAt: now }), healthy: false, breaker: "open" });
  }
  return out;
}

/** Takes a backend out of this isolate's rotation now and tells its region's monitor. */
export function reportFailure(env: Env, region: string, podId: string, holdMs: number, waitUntil: (p: Promise<unknown>) => void): void {
  locallyDown.set(podId, Date.now() + holdMs);
  waitUntil(monitor(env, region).report(region, podId).catch((e: unknown) => console.error(JSON.stringify({ msg: "health report failed", region, podId, error: String(e) }))));
}

/** A backend answered: any local hold on it ends. */
export function reportSuccess(podId: string): void {
  locallyDown.delete(podId);
}
