import { describe, expect, it } from "vitest";
import { closedBreaker, onFailure, onSuccess, shouldProbe, BREAKER_MAX_BACKOFF_MS } from "../../src/routing/breaker.js";
import { distanceKm } from "../../src/routing/geo.js";
import { affinityKey, planRoute } from "../../src/routing/plan.js";
import type { PodHealth, Registry } from "../../src/routing/registry.js";
import { hash53, rendezvousOrder } from "../../src/routing/rendezvous.js";
import { backendUrl } from "../../src/routing/backend-url.js";

const reg: Registry = {
  regions: [
    { id: "eu-west", name: "Frankfurt", latitude: 50.11, longitude: 8.68 },
    { id: "us-east", name: "Virginia", latitude: 38.95, longitude: -77.45 },
    { id: "ap-south", name: "Singapore", latitude: 1.35, longitude: 103.82 },
  ],
  pods: [
    { id: "eu-1", region: "eu-west", url: "http://eu-1", models: ["m"], capacity: 4, kind: "moe-pod", enabled: true },
    { id: "eu-2", region: "eu-west", url: "http://eu-2", models: ["m"], capacity: 4, kind: "moe-pod", enabled: true },
    { id: "us-1", region: "us-east", url: "http://us-1", models: ["m", "other"], capacity: 4, kind: "moe-pod", enabled: true },
    { id: "ap-1", region: "ap-south", url: "http://ap-1", models: ["m"], capacity: 4, kind: "moe-pod", enabled: true },
  ],
};
const PARIS = { latitude: 48.85, longitude: 2.35 };
const NYC = { latitude: 40.71, longitude: -74.0 };
const health = (entries: Partial<PodHealth & { id: string }>[]) =>
  new Map(entries.map((e) => [e.id!, { healthy: true, running: 0, waiting: 0, checkedAt: 0, breaker: "closed" as const, ...e } as PodHealth]));

describe("geo", () => {
  it("measures great-circle distance", () => {
    expect(distanceKm(PARIS, { latitude: 50.11, longitude: 8.68 })).toBeCloseTo(479, -1);
  });
});

describe("planRoute", () => {
  const plan = (h = new Map<string, PodHealth>(), extra: Partial<Parameters<typeof planRoute>[2]> = {}) =>
    planRoute(reg, h, { model: "m", affinityKey: "k", location: PARIS, ...extra });

  it("serves a client from the nearest region first, then the next nearest", () => {
    const order = plan().map((c) => c.region);
    expect(order.slice(0, 2)).toEqual(["eu-west", "eu-west"]);
    expect(order.slice(2)).toEqual(["us-east", "ap-south"]);
    expect(planRoute(reg, new Map(), { model: "m", affinityKey: "k", location: NYC })[0]!.region).toBe("us-east");
  });

  it("honours an explicit region", () => {
    expect(plan(new Map(), { preferredRegion: "ap-south" })[0]!.region).toBe("ap-south");
  });

  it("only considers pods serving the model", () => {
    expect(planRoute(reg, new Map(), { model: "other", affinityKey: "k", location: PARIS }).map((c) => c.pod.id)).toEqual(["us-1"]);
    expect(planRoute(reg, new Map(), { model: "none", affinityKey: "k" })).toEqual([]);
  });

  it("takes unhealthy pods out of rotation, keeping them only as a last resort", () => {
    const c = plan(health([{ id: "eu-1", healthy: false, breaker: "open" }, { id: "eu-2", healthy: false, breaker: "open" }]));
    expect(c[0]!.region).toBe("us-east");
    expect(c.slice(-2).map((x) => x.reason)).toEqual(["unhealthy-last-resort", "unhealthy-last-resort"]);
  });

  it("spills to the next region when every pod of the nearest is full", () => {
    const c = plan(health([{ id: "eu-1", running: 4 }, { id: "eu-2", running: 3, waiting: 1 }]));
    expect(c[0]!.pod.id).toBe("us-1");
    expect(c.map((x) => x.pod.id)).toContain("eu-1"); // still a fallback
  });

  it("keeps a prefix on one pod, and moves it only when that pod is full", () => {
    const key = affinityKey("ten_a", "m", [{ role: "system", content: "x".repeat(2000) }]);
    const first = planRoute(reg, new Map(), { model: "m", affinityKey: key, location: PARIS })[0]!.pod.id;
    for (let i = 0; i < 5; i++) expect(planRoute(reg, new Map(), { model: "m", affinityKey: key, location: PARIS })[0]!.pod.id).toBe(first);
    const other = first === "eu-1" ? "eu-2" : "eu-1";
    expect(planRoute(reg, health([{ id: first, running: 4 }]), { model: "m", affinityKey: key, location: PARIS })[0]!.pod.id).toBe(other);
  });

  it("spreads distinct prefixes across a region's pods, and the same prefix of another tenant independently", () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const id = planRoute(reg, new Map(), { model: "m", affinityKey: affinityKey(`t${i}`, "m", `prompt ${i}`), location: PARIS })[0]!.pod.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(counts.get("eu-1")! / 400).toBeGreaterThan(0.4);
    expect(counts.get("eu-2")! / 400).toBeGreaterThan(0.4);
  });

  it("affinity workload: every request after the first with a shared prefix lands on the prefix's pod", () => {
    // 40 prefixes × 10 requests with different suffixes beyond the affinity window; pods stay healthy.
    const home = new Map<number, string>();
    let hits = 0;
    let repeats = 0;
    for (let r = 0; r < 400; r++) {
      const p = r % 40;
      const prompt = [{ role: "system", content: `shared prefix ${p} `.repeat(80) }, { role: "user", content: `question ${r}` }];
      const pod = planRoute(reg, new Map(), { model: "m", affinityKey: affinityKey("ten", "m", prompt), location: PARIS })[0]!.pod.id;
      if (home.has(p)) {
        repeats++;
        if (home.get(p) === pod) hits++;
      } else home.set(p, pod);
    }
    expect(hits / repeats).toBe(1);
  });
});

describe("rendezvous hashing", () => {
  it("moves only the removed node's keys", () => {
    const nodes = ["a", "b", "c", "d"].map((id) => ({ id }));
    const before = new Map<string, string>();
    for (let i = 0; i < 1000; i++) before.set(`k${i}`, rendezvousOrder(hash53(`k${i}`), nodes)[0]!.id);
    const without = nodes.filter((n) => n.id !== "c");
    for (const [k, owner] of before) {
      const now = rendezvousOrder(hash53(k), without)[0]!.id;
      if (owner !== "c") expect(now).toBe(owner);
    }
  });
  it("weights by capacity", () => {
    let big = 0;
    for (let i = 0; i < 4000; i++) if (rendezvousOrder(hash53(`k${i}`), [{ id: "small", weight: 1 }, { id: "big", weight: 3 }])[0]!.id === "big") big++;
    expect(big / 4000).toBeGreaterThan(0.7);
    expect(big / 4000).toBeLessThan(0.8);
  });
});

describe("circuit breaker", () => {
  it("opens on failure, half-opens after the back-off, closes on success, backs off exponentially", () => {
    let b = closedBreaker();
    expect(shouldProbe(b, 0)).toBe(true);
    b = onFailure(b, 1000);
    expect(b.state).toBe("open");
    expect(shouldProbe(b, 1500)).toBe(false);
    expect(shouldProbe(b, 2000)).toBe(true); // the half-open trial
    b = onFailure(b, 2000);
    expect(b.retryAt).toBe(4000);
    for (let i = 0; i < 10; i++) b = onFailure(b, 0);
    expect(b.backoffMs).toBe(BREAKER_MAX_BACKOFF_MS);
    expect(onSuccess(b).state).toBe("closed");
  });
});

describe("backend URLs", () => {
  it("keeps a base URL's path prefix and query, and does not double an OpenAI-style /v1", () => {
    expect(backendUrl("http://127.0.0.1:8100", "/v1/chat/completions")).toBe("http://127.0.0.1:8100/v1/chat/completions");
    expect(backendUrl("http://127.0.0.1:8100/", "/health")).toBe("http://127.0.0.1:8100/health");
    expect(backendUrl("https://proxy.example/eu-1", "/v1/completions")).toBe("https://proxy.example/eu-1/v1/completions");
    expect(backendUrl("https://proxy.example/eu-1/", "/load")).toBe("https://proxy.example/eu-1/load");
    expect(backendUrl("https://api.example.com/v1", "/v1/chat/completions")).toBe("https://api.example.com/v1/chat/completions");
    expect(backendUrl("https://openrouter.example/api/v1/", "/v1/chat/completions")).toBe("https://openrouter.example/api/v1/chat/completions");
    expect(backendUrl("https://api.example.com/v1", "/health")).toBe("https://api.example.com/health");
    expect(backendUrl("https://gw.example/x?tenant=a", "/v1/completions")).toBe("https://gw.example/x/v1/completions?tenant=a");
    // Only a whole last segment "v1" is dropped.
    expect(backendUrl("https://api.example.com/apiv1", "/v1/completions")).toBe("https://api.example.com/apiv1/v1/completions");
  });
});
