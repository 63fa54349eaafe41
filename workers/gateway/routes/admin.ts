import { Hono } from "hono";
import { z } from "zod";
import { PageQuerySchema } from "../../../src/admin/pagination.js";
import {
  CreateKeySchema,
  CreateTenantSchema,
  RotateKeySchema,
  UpdateKeySchema,
  UpdateTenantSchema,
} from "../../../src/admin/schemas.js";
import { validateBody } from "../../../src/openai/validate.js";
import { PodSchema, RegionSchema } from "../../../src/routing/registry.js";
import { deletePod, deleteRegion, readRegistry, upsertPod, upsertRegion } from "../routing/registry-store.js";
import * as store from "../admin/store.js";
import { forgetKeyHash } from "../auth/key-store.js";
import { hashApiKey } from "../../../src/auth/api-keys.js";
import { bodyOf, optionalBodyOf } from "../validated-body.js";
import type { AppEnv } from "../env.js";
import { adminAuth } from "../middleware/admin-auth.js";

/** The operator's API: tenants and their keys. Plaintext keys appear only in create/rotate responses. */
export const admin = new Hono<AppEnv>();
admin.use("*", adminAuth);

admin.post("/tenants", async (c) => {
  const { name, limits, response_cache } = await bodyOf(c, CreateTenantSchema);
  return c.json(await store.createTenant(c.env.DB, name, limits, response_cache), 201);
});

const TenantsQuerySchema = PageQuerySchema.extend({ name: z.string().max(200).optional() });

admin.get("/tenants", async (c) => {
  const { name, ...page } = validateBody(TenantsQuerySchema, c.req.query());
  return c.json(await store.listTenants(c.env.DB, page, name));
});

admin.get("/tenants/:tenant", async (c) => c.json(await store.getTenant(c.env.DB, c.req.param("tenant"))));

admin.patch("/tenants/:tenant", async (c) => {
  const patch = await bodyOf(c, UpdateTenantSchema);
  const { tenant, keyHashes } = await store.updateTenant(c.env.DB, c.req.param("tenant"), patch);
  keyHashes.forEach(forgetKeyHash);
  return c.json(tenant);
});

admin.post("/tenants/:tenant/keys", async (c) => {
  const spec = await bodyOf(c, CreateKeySchema);
  const created = await store.createKey(c.env.DB, c.req.param("tenant"), spec);
  // An imported key may have been tried before it existed: drop that cached "unknown key".
  forgetKeyHash(await hashApiKey(created.key));
  return c.json(created, 201);
});

admin.get("/tenants/:tenant/keys", async (c) =>
  c.json(await store.listKeys(c.env.DB, c.req.param("tenant"), validateBody(PageQuerySchema, c.req.query()))),
);

admin.delete("/keys/:id", async (c) => {
  const { key, keyHash } = await store.revokeKey(c.env.DB, c.req.param("id"));
  forgetKeyHash(keyHash);
  return c.json(key);
});

admin.patch("/keys/:id", async (c) => {
  const patch = await bodyOf(c, UpdateKeySchema);
  const { key, keyHash } = await store.updateKey(c.env.DB, c.req.param("id"), patch);
  forgetKeyHash(keyHash);
  return c.json(key);
});

admin.post("/keys/:id/rotate", async (c) => {
  // An empty body means the defaults (revoke the old key at once).
  const { grace_seconds } = await optionalBodyOf(c, RotateKeySchema);
  const { key, oldKeyHash } = await store.rotateKey(c.env.DB, c.req.param("id"), grace_seconds);
  forgetKeyHash(oldKeyHash);
  return c.json(key, 201);
});

// The backend registry: regions and the backends in them (see src/routing/registry.ts).
admin.get("/regions", async (c) => {
  const reg = await readRegistry(c.env.DB);
  return c.json({ object: "list", data: reg.regions.map((r) => ({ ...r, pods: reg.pods.filter((p) => p.region === r.id) })) });
});

admin.put("/regions/:id", async (c) => {
  const region = await bodyOf(c, RegionSchema.omit({ id: true }));
  const r = await upsertRegion(c.env.DB, { ...region, id: validateBody(RegionSchema.pick({ id: true }), { id: c.req.param("id") }).id });
  return c.json(r.region, r.created ? 201 : 200);
});

admin.delete("/regions/:id", async (c) => {
  await deleteRegion(c.env.DB, c.req.param("id"));
  return c.json({ id: c.req.param("id"), deleted: true });
});

/** The region monitor's current view of its backends (breakers, load). */
admin.get("/regions/:id/health", async (c) => {
  const id = c.req.param("id");
  return c.json(await c.env.REGION_MONITOR.get(c.env.REGION_MONITOR.idFromName(id)).snapshot(id));
});

admin.get("/pods", async (c) => c.json({ object: "list", data: (await readRegistry(c.env.DB)).pods }));

admin.put("/pods/:id", async (c) => {
  const pod = await bodyOf(c, PodSchema.omit({ id: true }));
  const r = await upsertPod(c.env.DB, { ...pod, id: validateBody(PodSchema.pick({ id: true }), { id: c.req.param("id") }).id });
  return c.json(r.pod, r.created ? 201 : 200);
});

admin.delete("/pods/:id", async (c) => {
  await deletePod(c.env.DB, c.req.param("id"));
  return c.json({ id: c.req.param("id"), deleted: true });
});
