import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { adminCall, authed, gw, newTenantKey } from "./helpers.js";

const chat = { model: "test-echo", messages: [{ role: "user", content: "hi" }] };
const call = (key: string) => gw("/v1/chat/completions", authed(key, chat));
const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; type: string; message: string } }).error;

/** Polls until `check` holds or the deadline passes: waiting on a documented time bound, not a fixed sleep. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
}

describe("API key authentication", () => {
  it("401 invalid_api_key without a key, with a malformed one, or with an unknown one", async () => {
    for (const headers of [{}, { authorization: "Basic abc" }, { authorization: "Bearer short" }, { authorization: "Bearer sk-" + "x".repeat(48) }] as Record<string, string>[]) {
      const res = await gw("/v1/models", { headers });
      expect(res.status).toBe(401);
      const e = await errorOf(res);
      expect(e.code).toBe("invalid_api_key");
      expect(e.type).toBe("invalid_request_error");
    }
  });

  it("never echoes the key back beyond its last four characters", async () => {
    const fake = "sk-" + "Q".repeat(44) + "WXYZ";
    const res = await gw("/v1/models", { headers: { authorization: `Bearer ${fake}` } });
    const e = await errorOf(res);
    expect(e.message).toContain("sk-...WXYZ");
    expect(e.message).not.toContain("QQQQ");
  });

  it("stores only a hash of the key", async () => {
    const { key, keyId } = await newTenantKey();
    const row = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(keyId).first<Record<string, unknown>>();
    expect(JSON.stringify(row)).not.toContain(key.slice(3));
    expect(row!.key_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("create tenant → create key → use → revoke → 401", async () => {
    const { key, keyId } = await newTenantKey();
    expect((await call(key)).status).toBe(200);
    const revoked = await adminCall<{ status: string }>("DELETE", `/keys/${keyId}`);
    expect(revoked.status).toBe(200);
    expect(revoked.json.status).toBe("revoked");
    // The isolate that served the revocation forgets the key at once.
    const res = await call(key);
    expect(res.status).toBe(401);
    expect((await errorOf(res)).message).toMatch(/revoked/);
  });

  it("a revocation made elsewhere takes effect within the documented cache time (AUTH_CACHE_TTL_SECONDS)", async () => {
    const { key, keyId } = await newTenantKey();
    expect((await call(key)).status).toBe(200); // now cached in this isolate
    // Revoke behind the isolate's back, as another isolate or region would.
    await env.DB.prepare("UPDATE api_keys SET status = 'revoked' WHERE id = ?").bind(keyId).run();
    const ttlMs = Number(env.AUTH_CACHE_TTL_SECONDS) * 1000;
    await within(ttlMs + 500, async () => (await call(key)).status === 401);
  });

  it("rejects an expired key", async () => {
    const { key, keyId } = await newTenantKey({ expires_at: Math.floor(Date.now() / 1000) + 3600 });
    expect((await call(key)).status).toBe(200);
    await env.DB.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?").bind(Math.floor(Date.now() / 1000) - 1, keyId).run();
    await within(Number(env.AUTH_CACHE_TTL_SECONDS) * 1000 + 500, async () => {
      const res = await call(key);
      return res.status === 401 && /expired/.test((await errorOf(res)).message);
    });
  });

  it("rotation issues a working successor and retires the old key", async () => {
    const { key, keyId } = await newTenantKey({ models: ["test-echo"], name: "ci" });
    const rotated = await adminCall<{ id: string; key: string; rotated_from: string; models: string[]; name: string }>("POST", `/keys/${keyId}/rotate`);
    expect(rotated.status).toBe(201);
    expect(rotated.json).toMatchObject({ rotated_from: keyId, models: ["test-echo"], name: "ci" });
    expect((await call(rotated.json.key)).status).toBe(200);
    expect((await call(key)).status).toBe(401);
    expect((await adminCall("POST", `/keys/${keyId}/rotate`)).status).toBe(409);
  });

  it("rotation with a grace period keeps the old key working until it ends", async () => {
    const { key, keyId } = await newTenantKey();
    const rotated = await adminCall<{ key: string }>("POST", `/keys/${keyId}/rotate`, { grace_seconds: 3600 });
    expect((await call(key)).status).toBe(200);
    expect((await call(rotated.json.key)).status).toBe(200);
  });

  it("a suspended tenant's keys get 403; reactivation restores them", async () => {
    const { key, tenant } = await newTenantKey();
    expect((await call(key)).status).toBe(200);
    expect((await adminCall("PATCH", `/tenants/${tenant}`, { status: "suspended" })).status).toBe(200);
    const res = await call(key);
    expect(res.status).toBe(403);
    expect((await errorOf(res)).code).toBe("account_suspended");
    await adminCall("PATCH", `/tenants/${tenant}`, { status: "active" });
    expect((await call(key)).status).toBe(200);
  });

  it("records last use", async () => {
    const { key, keyId, tenant } = await newTenantKey();
    await call(key);
    await within(2000, async () => {
      const list = await adminCall<{ data: { id: string; last_used_at: number | null }[] }>("GET", `/tenants/${tenant}/keys`);
      return list.json.data.find((k) => k.id === keyId)!.last_used_at !== null;
    });
  });
});
