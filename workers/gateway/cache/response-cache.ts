import type { CachedAnswer } from "../../../src/cache/completion-replay.js";

/**
 * Deterministic answers cached with the Cache API: local to each Cloudflare location, immediately consistent
 * there, no write quota, expiry by TTL. (KV would share entries across locations, at the price of ~60 s
 * propagation and a paid write per answer; a repeated deterministic request mostly comes back to the same
 * location.) Keys are opaque hashes that include the tenant. Concurrent identical misses in an isolate are
 * coalesced: followers wait for the leader's answer instead of reaching a GPU.
 */
const ORIGIN = "https://response-cache.internal/v1/";
const inFlight = new Map<string, Promise<CachedAnswer | null>>();

const url = (key: string) => `${ORIGIN}${key}`;

export async function lookup(key: string): Promise<CachedAnswer | null> {
  const hit = await caches.default.match(url(key));
  return hit ? ((await hit.json()) as CachedAnswer) : null;
}

export async function store(key: string, answer: CachedAnswer, ttlSeconds: number): Promise<void> {
  await caches.default.put(url(key), new Response(JSON.stringify(answer), { headers: { "content-type": "application/json", "cache-control": `max-age=${ttlSeconds}` } }));
}

/** The leader's pending answer for `key`, if an identical request is already on its way in this isolate. */
export function pending(key: string): Promise<CachedAnswer | null> | undefined {
  return inFlight.get(key);
}

/** Marks this request as the leader for `key`; call `done` with its answer (or null) when it is known. */
export function lead(key: string): (answer: CachedAnswer | null) => void {
  let resolve!: (a: CachedAnswer | null) => void;
  inFlight.set(key, new Promise((r) => (resolve = r)));
  return (answer) => {
    inFlight.delete(key);
    resolve(answer);
  };
}
