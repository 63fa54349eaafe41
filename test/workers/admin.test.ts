import { waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { adminCall, gw, gwWithVars, newTenantKey } from "./helpers.js";

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

  it("a deployed gateway keeps the admin API closed behind a token short enough to guess", async () => {
    const call = async (environment: string, token: string) => {
      const { ctx, res: answer } = gwWithVars({ ENVIRONMENT: environment, GATEWAY_ADMIN_TOKEN: token }, "/admin/tenants", { headers: { authorization: `Bearer ${token}` } });
      const res = await answer;
      await waitOnExecutionContext(ctx);
      return { status: res.status, code: res.ok ? null : ((await res.json()) as { error: { code: string } }).error.code };
    };
    const long = "x".repeat(32);
    expect(await call("production", "short-token")).toEqual({ status: 401, code: "admin_disabled" });
    expect(await call("staging", "short-token")).toEqual({ status: 401, code: "admin_disabled" });
    expect(await call("production", long)).toEqual({ status: 200, code: null });
    expect(await call("development", "short-token")).toEqual({ status: 200, code: null });
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

  it("lists keys and tenants in pages that join up to the whole list, whatever the page size", async () => {
    const t = await adminCall<{ id: string }>("POST", "/tenants", { name: `paged-${crypto.randomUUID()}` });
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await adminCall<{ id: string }>("POST", `/tenants/${t.json.id}/keys`, { name: `k${i}` })).json.id);
    type KeyPage = { data: { id: string; name: string }[]; first_id: string | null; last_id: string | null; has_more: boolean };
    const idsOf = (pages: KeyPage[]) => pages.flatMap((p) => p.data.map((x) => x.id));
    const walk = async (path: string, limit: number) => {
      const pages: KeyPage[] = [];
      for (let after: string | null = null; ; ) {
        const r: { status: number; json: KeyPage } = await adminCall<KeyPage>("GET", `${path}${path.includes("?") ? "&" : "?"}limit=${limit}${after ? `&after=${after}` : ""}`);
        expect(r.status).toBe(200);
        pages.push(r.json);
        if (!r.json.has_more) return pages;
        after = r.json.last_id;
      }
    };
    for (const limit of [1, 2, 5, 100]) {
      const pages = await walk(`/tenants/${t.json.id}/keys`, limit);
      expect(pages).toHaveLength(Math.max(1, Math.ceil(5 / limit)));
      expect(idsOf(pages)).toEqual(idsOf([(await adminCall<KeyPage>("GET", `/tenants/${t.json.id}/keys`)).json]));
      expect(new Set(idsOf(pages))).toEqual(new Set(made));
      for (const p of pages) expect([p.first_id, p.last_id]).toEqual([p.data[0]!.id, p.data.at(-1)!.id]);
    }
    const name = `same-${crypto.randomUUID()}`;
    const tenants: string[] = [];
    for (let i = 0; i < 3; i++) tenants.push((await adminCall<{ id: string }>("POST", "/tenants", { name })).json.id);
    const byName = await walk(`/tenants?name=${name}`, 2);
    expect(byName.map((p) => p.data.length)).toEqual([2, 1]);
    expect(new Set(idsOf(byName))).toEqual(new Set(tenants));
    // A cursor stays good when its row stops matching the filter (renamed here) between pages.
    const first = await adminCall<KeyPage>("GET", `/tenants?name=${name}&limit=1`);
    await adminCall("PATCH", `/tenants/${first.json.last_id}`, { name: `${name}-renamed` });
    const next = await adminCall<KeyPage>("GET", `/tenants?name=${name}&limit=1&after=${first.json.last_id}`);
    expect(next.status).toBe(200);
    expect(idsOf([next.json])).toEqual([idsOf(byName)[1]]);
  });

  it("refuses a page size out of range and a cursor from another list", async () => {
    const a = await newTenantKey();
    const b = await newTenantKey();
    for (const q of ["limit=0", "limit=1001", "limit=two"]) {
      const r = await adminCall<{ error: { param: string } }>("GET", `/tenants/${a.tenant}/keys?${q}`);
      expect([r.status, r.json.error.param]).toEqual([400, "limit"]);
    }
    const foreign = await adminCall<{ error: { param: string } }>("GET", `/tenants/${a.tenant}/keys?after=${b.keyId}`);
    expect([foreign.status, foreign.json.error.param]).toEqual([400, "after"]);
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
