import { Hono, type Context } from "hono";
import type { z } from "zod";
import {
  CreateKeySchema,
  CreateTenantSchema,
  RotateKeySchema,
  UpdateTenantSchema,
} from "../../../src/admin/schemas.js";
import { validateBody } from "../../../src/openai/validate.js";
import * as store from "../admin/store.js";
import { forgetKeyHash } from "../auth/key-store.js";
import { readJsonBody, readValidBody } from "../../../src/http/request-body.js";
import type { AppEnv } from "../env.js";
import { adminAuth } from "../middleware/admin-auth.js";

/** The operator's API: tenants and their keys. Plaintext keys appear only in create/rotate responses. */
export const admin = new Hono<AppEnv>();
admin.use("*", adminAuth);

const body = async <S extends z.ZodType>(c: Context<AppEnv>, schema: S): Promise<z.infer<S>> =>
  (await readValidBody(c.req.raw, c.get("settings").maxBodyBytes, schema)).parsed;

admin.post("/tenants", async (c) => {
  const { name } = await body(c, CreateTenantSchema);
  return c.json(await store.createTenant(c.env.DB, name), 201);
});

admin.get("/tenants", async (c) =>
  c.json({ object: "list", data: await store.listTenants(c.env.DB, c.req.query("name")) }),
);

admin.get("/tenants/:tenant", async (c) => c.json(await store.getTenant(c.env.DB, c.req.param("tenant"))));

admin.patch("/tenants/:tenant", async (c) => {
  const patch = await body(c, UpdateTenantSchema);
  const { tenant, keyHashes } = await store.updateTenant(c.env.DB, c.req.param("tenant"), patch);
  keyHashes.forEach(forgetKeyHash);
  return c.json(tenant);
});

admin.post("/tenants/:tenant/keys", async (c) => {
  const spec = await body(c, CreateKeySchema);
  return c.json(await store.createKey(c.env.DB, c.req.param("tenant"), spec), 201);
});

admin.get("/tenants/:tenant/keys", async (c) =>
  c.json({ object: "list", data: await store.listKeys(c.env.DB, c.req.param("tenant")) }),
);

admin.delete("/keys/:id", async (c) => {
  const { key, keyHash } = await store.revokeKey(c.env.DB, c.req.param("id"));
  forgetKeyHash(keyHash);
  return c.json(key);
});

admin.post("/keys/:id/rotate", async (c) => {
  // An empty body means the defaults (revoke the old key at once).
  const raw = c.req.header("content-length") === "0" || !c.req.raw.body ? {} : await readJsonBody(c.req.raw, c.get("settings").maxBodyBytes);
  const { grace_seconds } = validateBody(RotateKeySchema, raw);
  const { key, oldKeyHash } = await store.rotateKey(c.env.DB, c.req.param("id"), grace_seconds);
  forgetKeyHash(oldKeyHash);
  return c.json(key, 201);
});
