import { describe, expect, it } from "vitest";
import { bearerToken, constantTimeEqual, displayPrefix, generateApiKey, hashApiKey, isWellFormedKey } from "../../src/auth/api-keys.js";
import { judgeKey, modelAllowed, shouldTouchLastUsed, type KeyRecord } from "../../src/auth/key-policy.js";

describe("api keys", () => {
  it("generates distinct well-formed base62 keys", () => {
    const keys = new Set(Array.from({ length: 200 }, generateApiKey));
    expect(keys.size).toBe(200);
    for (const k of keys) {
      expect(k).toMatch(/^sk-[A-Za-z0-9]{48}$/);
      expect(isWellFormedKey(k)).toBe(true);
    }
  });
  it("hashes with SHA-256 (known vector)", async () => {
    expect(await hashApiKey("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
  it("shows only the last four characters", () => {
    expect(displayPrefix("sk-abcdefghijklmnopqrstuvwxyz1234")).toBe("sk-...1234");
  });
  it("compares in constant time, including different lengths", () => {
    expect(constantTimeEqual("abc", "abc")).toBe(true);
    expect(constantTimeEqual("abc", "abd")).toBe(false);
    expect(constantTimeEqual("abc", "abcd")).toBe(false);
    expect(constantTimeEqual("", "")).toBe(true);
  });
  it("parses bearer tokens strictly", () => {
    expect(bearerToken("Bearer sk-1")).toBe("sk-1");
    expect(bearerToken("bearer   sk-1 ")).toBe("sk-1");
    expect(bearerToken("Basic abc")).toBeNull();
    expect(bearerToken("Bearer a b")).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });
  it("rejects malformed keys before hashing", () => {
    expect(isWellFormedKey("short")).toBe(false);
    expect(isWellFormedKey("sk-" + "a".repeat(300))).toBe(false);
    expect(isWellFormedKey("sk-aaaaaaaaaaaaaaaaaaaaaaa\u00e9")).toBe(false);
  });
});

describe("key policy", () => {
  const base: KeyRecord = {
    id: "k",
    tenantId: "t",
    keyHash: "h",
    status: "active",
    tenantStatus: "active",
    models: null,
    expiresAt: null,
    lastUsedAt: null,
    keyLimits: null,
    tenantLimits: null,
    responseCache: { enabled: true, ttl_seconds: 3600 },
  };
  it("judges keys", () => {
    expect(judgeKey(null, 100)).toEqual({ ok: false, reason: "unknown" });
    expect(judgeKey(base, 100)).toEqual({ ok: true });
    expect(judgeKey({ ...base, status: "revoked" }, 100)).toEqual({ ok: false, reason: "revoked" });
    expect(judgeKey({ ...base, expiresAt: 100 }, 100)).toEqual({ ok: false, reason: "expired" });
    expect(judgeKey({ ...base, expiresAt: 101 }, 100)).toEqual({ ok: true });
    expect(judgeKey({ ...base, tenantStatus: "suspended" }, 100)).toEqual({ ok: false, reason: "tenant_suspended" });
  });
  it("restricts models only when a list is set", () => {
    expect(modelAllowed(base, "x")).toBe(true);
    expect(modelAllowed({ models: ["a"] }, "x")).toBe(false);
    expect(modelAllowed({ models: ["a"] }, "a")).toBe(true);
  });
  it("touches last_used_at at most once a minute", () => {
    expect(shouldTouchLastUsed({ lastUsedAt: null }, 100)).toBe(true);
    expect(shouldTouchLastUsed({ lastUsedAt: 100 }, 159)).toBe(false);
    expect(shouldTouchLastUsed({ lastUsedAt: 100 }, 160)).toBe(true);
  });
});
