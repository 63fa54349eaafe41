import { describe, expect, it } from "vitest";
import { adminCall, gw, newTenantKey } from "./helpers.js";

describe("admin API", () => {
  it("requires the admin token", async () => {
    for (const headers of [{}, { authorization: "Bearer wrong" }] as Record<string, string>[]) {
      const res = await gw("/admin/tenants", { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: '{"name":"x"}' });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_admin_token");
    }
    const { key } = await newTenantKey();
    expect((await gw("/admin/tenants", { headers: { authorization: `Bearer ${key}` } })).status).toBe(401);
  });

  it("creates, reads, lists and renames tenants", async () => {
    const created = await adminCall<{ id: string; name: string; status: string; object: string }>("POST", "/tenants", { name: "  Acme  " });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ object: "tenant", name: "Acme", status: "active" });
    expect(created.json.id).toMatch(/^ten_/);
    expect((await adminCall("GET", `/tenants/${created.json.id}`)).json).toEqual(created.json);
    const byName = await adminCall<{ data: { id: string }[] }>("GET", "/tenants?name=Acme");
    expect(byName.json.data.map((t) => t.id)).toContain(created.json.id);
    const renamed = await adminCall<{ name: string }>("PATCH", `/tenants/${created.json.id}`, { name: "Acme Corp" });
    expect(renamed.json.name).toBe("Acme Corp");
  });

  it("validates bodies with OpenAI-shaped errors", async () => {
    const r = await adminCall<{ error: { param: string } }>("POST", "/tenants", { name: "" });
    expect(r.status).toBe(400);
    expect(r.json.error.param).toBe("name");
    const t = await adminCall<{ id: string }>("POST", "/tenants", { name: "v" });
    const past = await adminCall<{ error: { param: string } }>("POST", `/tenants/${t.json.id}/keys`, { expires_at: 1000 });
    expect(past.status).toBe(400);
    expect(past.json.error.param).toBe("expires_at");
    const badModels = await adminCall<{ error: { param: string } }>("POST", `/tenants/${t.json.id}/keys`, { models: "all" });
    expect(badModels.json.error.param).toBe("models");
    expect((await adminCall("PATCH", `/tenants/${t.json.id}`, {})).status).toBe(400);
  });

  it("404s for unknown tenants and keys", async () => {
    expect((await adminCall("GET", "/tenants/ten_nope")).status).toBe(404);
    expect((await adminCall("POST", "/tenants/ten_nope/keys", {})).status).toBe(404);
    expect((await adminCall("GET", "/tenants/ten_nope/keys")).status).toBe(404);
    expect((await adminCall("DELETE", "/keys/key_nope")).status).toBe(404);
    expect((await adminCall("POST", "/keys/key_nope/rotate")).status).toBe(404);
  });

  it("shows the plaintext key once; listings are masked", async () => {
    const t = await adminCall<{ id: string }>("POST", "/tenants", { name: "keys" });
    const k = await adminCall<{ id: string; key: string; display_prefix: string }>("POST", `/tenants/${t.json.id}/keys`, { name: "prod" });
    expect(k.status).toBe(201);
    expect(k.json.key).toMatch(/^sk-[A-Za-z0-9]{48}$/);
    expect(k.json.display_prefix).toBe(`sk-...${k.json.key.slice(-4)}`);
    const list = await adminCall<{ data: Record<string, unknown>[] }>("GET", `/tenants/${t.json.id}/keys`);
    expect(list.json.data).toHaveLength(1);
    expect(list.json.data[0]).not.toHaveProperty("key");
    expect(JSON.stringify(list.json)).not.toContain(k.json.key.slice(3));
  });

  it("imports an existing key once; a duplicate is a 409", async () => {
    const t = await adminCall<{ id: string }>("POST", "/tenants", { name: "import" });
    const key = `sk-imported-${crypto.randomUUID()}`;
    const first = await adminCall<{ key: string }>("POST", `/tenants/${t.json.id}/keys`, { key });
    expect(first.status).toBe(201);
    expect(first.json.key).toBe(key);
    expect((await adminCall("POST", `/tenants/${t.json.id}/keys`, { key })).status).toBe(409);
    expect((await gw("/v1/models", { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
  });

  it("an imported key works at once, even right after a request that tried it before it existed", async () => {
    const t = await adminCall<{ id: string }>("POST", "/tenants", { name: "import-late" });
    const key = `sk-imported-${crypto.randomUUID()}`;
    const models = () => gw("/v1/models", { headers: { authorization: `Bearer ${key}` } });
    expect((await models()).status).toBe(401);
    expect((await adminCall("POST", `/tenants/${t.json.id}/keys`, { key })).status).toBe(201);
    expect((await models()).status).toBe(200);
  });

  it("refuses new keys for a suspended tenant with 409", async () => {
    const t = await adminCall<{ id: string }>("POST", "/tenants", { name: "sus" });
    await adminCall("PATCH", `/tenants/${t.json.id}`, { status: "suspended" });
    expect((await adminCall("POST", `/tenants/${t.json.id}/keys`, {})).status).toBe(409);
  });

  it("revocation is idempotent", async () => {
    const { keyId } = await newTenantKey();
    expect((await adminCall("DELETE", `/keys/${keyId}`)).status).toBe(200);
    const again = await adminCall<{ status: string }>("DELETE", `/keys/${keyId}`);
    expect(again.status).toBe(200);
    expect(again.json.status).toBe("revoked");
  });
});
