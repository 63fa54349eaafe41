import { describe, expect, it } from "vitest";
import { formatDuration } from "../../src/limits/duration.js";
import { TenantLimiter, WINDOW_MS, type ScopeLimits } from "../../src/limits/limiter.js";
import { estimateReservation } from "../../src/limits/limits.js";

const key = (limits: ScopeLimits["limits"], id = "k1"): ScopeLimits => ({ name: "key", id, limits });
const tenant = (limits: ScopeLimits["limits"]): ScopeLimits => ({ name: "tenant", id: "t", limits });
let n = 0;
const admit = (l: TenantLimiter, scopes: ScopeLimits[], now: number, tokens = 1, leaseMs = 600_000) => l.admit({ requestId: `r${n++}`, tokens, now, leaseMs, scopes });

describe("formatDuration (OpenAI / Go style)", () => {
  it.each([
    [0, "0s"],
    [20, "20ms"],
    [999.2, "1000ms"],
    [1000, "1s"],
    [1500, "1.5s"],
    [360_000, "6m0s"],
    [61_250, "1m1.25s"],
    [3_723_000, "1h2m3s"],
  ])("%d ms → %s", (ms, s) => expect(formatDuration(ms)).toBe(s));
});

describe("TenantLimiter", () => {
  it("admits exactly rpm requests per sliding minute", () => {
    const l = new TenantLimiter();
    const results = Array.from({ length: 100 }, (_, i) => admit(l, [key({ rpm: 20 })], 1000 + i));
    expect(results.filter((r) => r.ok)).toHaveLength(20);
    const refused = results.find((r) => !r.ok)!;
    expect(refused).toMatchObject({ ok: false, kind: "requests", limit: 20, used: 20 });
    // The first admission leaves the window at 1000 + 60000.
    expect(!refused.ok && refused.retryAfterMs).toBe(1000 + WINDOW_MS - (1000 + 20));
    expect(admit(l, [key({ rpm: 20 })], 1000 + WINDOW_MS).ok).toBe(true);
  });

  it("reserves tokens at admission and settles them to real usage", () => {
    const l = new TenantLimiter();
    const s = [key({ tpm: 1000 })];
    const ids = [0, 1, 2].map(() => {
      const id = `t${n++}`;
      expect(l.admit({ requestId: id, tokens: 300, now: 0, leaseMs: 1e6, scopes: s }).ok).toBe(true);
      return id;
    });
    const fourth = l.admit({ requestId: "fourth", tokens: 300, now: 1, leaseMs: 1e6, scopes: s });
    expect(fourth).toMatchObject({ ok: false, kind: "tokens", used: 900, requested: 300 });
    expect(l.settle(ids[0]!, 40)).toBe(true);
    expect(l.settle(ids[0]!, 40)).toBe(false); // idempotent
    expect(l.admit({ requestId: "fourth", tokens: 300, now: 2, leaseMs: 1e6, scopes: s }).ok).toBe(true);
  });

  it("refuses a request larger than the whole budget without a retry time", () => {
    const r = admit(new TenantLimiter(), [key({ tpm: 100 })], 0, 101);
    expect(r).toMatchObject({ ok: false, kind: "tokens", retryAfterMs: null });
  });

  it("holds concurrency leases until settled, or until they expire", () => {
    const l = new TenantLimiter();
    const s = [key({ max_concurrent: 2 })];
    expect(l.admit({ requestId: "a", tokens: 1, now: 0, leaseMs: 10_000, scopes: s }).ok).toBe(true);
    expect(l.admit({ requestId: "b", tokens: 1, now: 0, leaseMs: 10_000, scopes: s }).ok).toBe(true);
    expect(l.admit({ requestId: "c", tokens: 1, now: 0, leaseMs: 10_000, scopes: s })).toMatchObject({ ok: false, kind: "concurrency" });
    l.settle("a", 1);
    expect(l.admit({ requestId: "c", tokens: 1, now: 1, leaseMs: 10_000, scopes: s }).ok).toBe(true);
    // b crashed and never settles: its lease lapses.
    expect(l.admit({ requestId: "d", tokens: 1, now: 5_000, leaseMs: 10_000, scopes: s }).ok).toBe(false);
    expect(l.admit({ requestId: "d", tokens: 1, now: 10_001, leaseMs: 10_000, scopes: s }).ok).toBe(true);
  });

  it("a renewed lease keeps a long request's slot past its first term, and survives a restart from records", () => {
    const l = new TenantLimiter();
    const s = [key({ max_concurrent: 1 })];
    const other = (id: string, now: number) => l.admit({ requestId: id, tokens: 1, now, leaseMs: 1_000, scopes: s });
    expect(l.admit({ requestId: "long", tokens: 1, now: 0, leaseMs: 1_000, scopes: s }).ok).toBe(true);
    for (let t = 500; t <= 120_000; t += 500) expect(l.renew("long", t, 1_000)).toBe(true); // past the token window too
    expect(other("x", 120_900)).toMatchObject({ ok: false, kind: "concurrency" });
    const restarted = TenantLimiter.fromRecords(l.records("long"));
    expect(restarted.admit({ requestId: "y", tokens: 1, now: 120_900, leaseMs: 1_000, scopes: s })).toMatchObject({ ok: false, kind: "concurrency" });
    // Not renewed, the lease runs out; a lease that ran out is not taken back, nor is a settled one renewed.
    expect(other("z", 121_001).ok).toBe(true);
    expect(l.renew("long", 121_002, 1_000)).toBe(false);
    expect(l.settle("z", 1)).toBe(true);
    expect(l.renew("z", 121_003, 1_000)).toBe(false);
    expect(l.renew("unknown", 0, 1_000)).toBe(false);
  });

  it("caps the sum over a tenant's keys by the tenant's limit, and changes nothing when refusing", () => {
    const l = new TenantLimiter();
    const t = tenant({ rpm: 10 });
    let ok = 0;
    for (let i = 0; i < 20; i++) if (admit(l, [t, key({ rpm: 10 }, i % 2 ? "k1" : "k2")], i).ok) ok++;
    expect(ok).toBe(10);
    // Refusals did not consume the keys' own budgets.
    expect(l.state([key({ rpm: 10 }, "k1")], 100).requests!.remaining).toBe(5);
  });

  it("reports the tightest scope in its state", () => {
    const l = new TenantLimiter();
    const scopes = [tenant({ rpm: 100, tpm: 10_000 }), key({ rpm: 5 })];
    const r = admit(l, scopes, 0, 500);
    expect(r.ok && r.state).toEqual({ requests: { limit: 5, remaining: 4, resetMs: WINDOW_MS }, tokens: { limit: 10_000, remaining: 9_500, resetMs: WINDOW_MS } });
  });

  it("rebuilds its windows and leases from its durable records", () => {
    const l = new TenantLimiter();
    const s = [key({ rpm: 3, tpm: 1000, max_concurrent: 2 })];
    const records = [];
    for (const id of ["a", "b"]) {
      expect(l.admit({ requestId: id, tokens: 100, now: 0, leaseMs: 10_000, scopes: s }).ok).toBe(true);
      records.push(...l.records(id));
    }
    const scopes = l.scopesOf("a");
    l.settle("a", 7);
    const settled = l.settledRecords("a", scopes);
    const byKey = new Map([...records, ...settled].map((r) => [`${r.scope}/${r.id}`, r]));
    const restored = TenantLimiter.fromRecords([...byKey.values()]);
    expect(restored.state(s, 1)).toEqual(l.state(s, 1));
    // b's lease survived the restart; a's was released; b can still be settled.
    expect(restored.admit({ requestId: "c", tokens: 1, now: 2, leaseMs: 10_000, scopes: s }).ok).toBe(true);
    expect(restored.admit({ requestId: "d", tokens: 1, now: 3, leaseMs: 10_000, scopes: s })).toMatchObject({ ok: false, kind: "requests" });
    expect(restored.settle("b", 5)).toBe(true);
    expect(restored.settle("a", 5)).toBe(false);
  });

  it("compaction lists records no window or lease needs", () => {
    const l = new TenantLimiter();
    const s = [key({ rpm: 100 })];
    l.admit({ requestId: "old", tokens: 1, now: 0, leaseMs: 10_000, scopes: s });
    l.settle("old", 1);
    l.admit({ requestId: "long", tokens: 1, now: 0, leaseMs: 600_000, scopes: s });
    l.admit({ requestId: "new", tokens: 1, now: WINDOW_MS, leaseMs: 10_000, scopes: s });
    expect(l.compact(WINDOW_MS + 1).map((d) => d.id)).toEqual(["old"]);
  });

  it("estimates reservations on the high side", () => {
    expect(estimateReservation(3000, 100)).toBe(1100);
  });
});
