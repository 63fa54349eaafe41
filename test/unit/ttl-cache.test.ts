import { describe, expect, it } from "vitest";
import { TtlCache } from "../../src/cache/ttl-cache.js";

describe("TtlCache", () => {
  it("expires entries at their deadline", () => {
    const c = new TtlCache<string, number | null>(10);
    c.set("a", null, 1000, 0);
    expect(c.get("a", 999)).toBeNull();
    expect(c.get("a", 1000)).toBeUndefined();
  });
  it("evicts the oldest entry when full", () => {
    const c = new TtlCache<string, number>(2);
    c.set("a", 1, 1000, 0);
    c.set("b", 2, 1000, 0);
    c.set("c", 3, 1000, 0);
    expect(c.get("a", 1)).toBeUndefined();
    expect(c.get("c", 1)).toBe(3);
    expect(c.size).toBe(2);
  });
  it("does not store with a zero TTL", () => {
    const c = new TtlCache<string, number>(2);
    c.set("a", 1, 0, 0);
    expect(c.get("a", 0)).toBeUndefined();
  });
});
