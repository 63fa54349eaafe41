import { distanceKm } from "./geo.js";
import { hash53, rendezvousOrder } from "./rendezvous.js";
import type { Pod, PodHealth, Region, Registry } from "./registry.js";

export interface ClientLocation {
  latitude: number;
  longitude: number;
}

export interface RouteRequest {
  model: string;
  /** Tenant plus the leading characters of the prompt: requests sharing it should share a pod. */
  affinityKey: string;
  /** An explicit region (the `x-region` header) comes first; otherwise the nearest to `location`. */
  preferredRegion?: string | null;
  location?: ClientLocation | null;
}

export interface Candidate {
  pod: Pod;
  region: string;
  /** Why it is in the list at this position (for logs). */
  reason: "affinity" | "spill" | "unhealthy-last-resort";
}

/**
 * The ordered backends to try for a request:
 *  1. regions by preference (explicit region, else distance from the client);
 *  2. the first region with a healthy pod that has spare capacity wins; within it, pods in rendezvous order
 *     on the affinity key (full pods after those with room — bounded load);
 *  3. then the other regions' healthy pods, nearest first (spill and failover);
 *  4. unhealthy pods last: a stale health view must not turn into a refused request.
 */
export function planRoute(reg: Registry, health: Map<string, PodHealth>, req: RouteRequest): Candidate[] {
  const serving = reg.pods.filter((p) => p.enabled && p.models.includes(req.model));
  if (serving.length === 0) return [];
  const regionOrder = orderRegions(reg.regions, req);
  const healthy = (p: Pod) => health.get(p.id)?.healthy ?? true; // never probed yet: assume up
  const hasRoom = (p: Pod) => {
    const h = health.get(p.id);
    return !h || h.running + h.waiting < p.capacity;
  };
  const keyHash = hash53(req.affinityKey);
  const perRegion = regionOrder.map((region) => {
    const inRegion = serving.filter((p) => p.region === region.id && healthy(p));
    const pods = rendezvousOrder(keyHash, inRegion.map((p) => ({ id: p.id, weight: p.capacity, pod: p }))).map((x) => x.pod);
    return { region, roomy: pods.filter(hasRoom), full: pods.filter((p) => !hasRoom(p)) };
  });
  // The first region (in preference order) with room takes the request; the others follow in order.
  const home = perRegion.find((r) => r.roomy.length > 0) ?? perRegion[0]!;
  const out: Candidate[] = [];
  for (const r of [home, ...perRegion.filter((x) => x !== home)]) {
    for (const pod of [...r.roomy, ...r.full]) out.push({ pod, region: r.region.id, reason: r === home && r.roomy.includes(pod) ? "affinity" : "spill" });
  }
  // If every region was full, the nearest region's pods still come first (already in order above).
  const tried = new Set(out.map((c) => c.pod.id));
  for (const region of regionOrder) {
    for (const pod of serving.filter((p) => p.region === region.id && !tried.has(p.id))) {
      out.push({ pod, region: region.id, reason: "unhealthy-last-resort" });
    }
  }
  return out;
}

function orderRegions(regions: Region[], req: RouteRequest): Region[] {
  const anchor = regions.find((r) => r.id === req.preferredRegion) ?? null;
  const from = anchor ?? req.location ?? null;
  const sorted = [...regions].sort((a, b) => (from ? distanceKm(from, a) - distanceKm(from, b) : 0) || (a.id < b.id ? -1 : 1));
  return anchor ? [anchor, ...sorted.filter((r) => r !== anchor)] : sorted;
}

/** The affinity key: tenant, model and the first `chars` characters of the prompt as sent. */
export function affinityKey(tenant: string, model: string, prompt: unknown, chars = 1024): string {
  const text = typeof prompt === "string" ? prompt : leadingText(prompt, chars);
  return `${tenant}\u0000${model}\u0000${text.slice(0, chars)}`;
}

/** The first `chars` characters of a structured prompt (messages), without serialising all of it. */
function leadingText(prompt: unknown, chars: number): string {
  if (!Array.isArray(prompt)) return JSON.stringify(prompt ?? "").slice(0, chars);
  let out = "";
  for (const m of prompt) {
    out += JSON.stringify(m);
    if (out.length >= chars) break;
  }
  return out;
}
