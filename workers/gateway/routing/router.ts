import type { Context } from "hono";
import type { CatalogEntry } from "../../../src/config/catalog.js";
import { affinityKey, planRoute } from "../../../src/routing/plan.js";
import type { AppEnv } from "../env.js";
import { healthFor } from "./health-view.js";
import { cachedRegistry } from "./registry-store.js";

/** Where one attempt goes. Registry backends carry their id and region (for health reports); fixed upstreams don't. */
export interface Target {
  url: string;
  podId: string | null;
  region: string | null;
  /** Our pods get signed requests; other engines get the catalog's upstream key, if any. */
  signed: boolean;
}

function clientLocation(req: Request): { latitude: number; longitude: number } | null {
  const cf = (req as Request & { cf?: { latitude?: string; longitude?: string } }).cf;
  const lat = Number(cf?.latitude);
  const lon = Number(cf?.longitude);
  return cf?.latitude !== undefined && Number.isFinite(lat) && Number.isFinite(lon) ? { latitude: lat, longitude: lon } : null;
}

/**
 * Chooses the backends for a request in the order to try them: registry pods by region preference (the
 * `x-region` header, else `request.cf`'s location), health and spare capacity, prefix affinity within a region;
 * then the catalog's fixed upstreams.
 */
export async function chooseTargets(c: Context<AppEnv>, entry: CatalogEntry, prompt: unknown, tenant: string): Promise<Target[]> {
  const settings = c.get("settings");
  const registry = await cachedRegistry(c.env.DB, settings.registryCacheMs);
  const regions = [...new Set(registry.pods.filter((p) => p.enabled && p.models.includes(entry.id)).map((p) => p.region))];
  const health = regions.length ? await healthFor(c.env, regions, settings.healthSnapshotMs, (p) => c.executionCtx.waitUntil(p)) : new Map();
  const plan = planRoute(registry, health, {
    model: entry.id,
    affinityKey: affinityKey(tenant, entry.id, prompt),
    preferredRegion: c.req.header("x-region") ?? null,
    location: clientLocation(c.req.raw),
  });
  return [
    ...plan.map((p) => ({ url: p.pod.url, podId: p.pod.id, region: p.region, signed: p.pod.kind === "moe-pod" })),
    ...entry.upstreams.map((url) => ({ url, podId: null, region: null, signed: false })),
  ];
}
