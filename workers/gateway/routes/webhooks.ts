import { Hono } from "hono";
import { PageQuerySchema } from "../../../src/admin/pagination.js";
import { validateBody } from "../../../src/openai/validate.js";
import { errors } from "../../../src/openai/errors.js";
import { CreateWebhookSchema, DeliveryStatusSchema, ReplaySchema, RotateSecretSchema } from "../../../src/webhooks/schemas.js";
import { checkEndpointUrl } from "../../../src/webhooks/url-policy.js";
import { getTenant } from "../admin/store.js";
import type { AppEnv } from "../env.js";
import { bodyOf, optionalBodyOf } from "../validated-body.js";
import { replayRange } from "../webhooks/replay.js";
import * as store from "../webhooks/store.js";

/** Admin routes for a tenant's billing webhooks: /admin/tenants/{tenant}/webhooks… */
export const webhooks = new Hono<AppEnv>();

webhooks.post("/", async (c) => {
  const tenant = c.req.param("tenant")!;
  await getTenant(c.env.DB, tenant);
  const { url, events } = await bodyOf(c, CreateWebhookSchema);
  const problem = checkEndpointUrl(url, c.env.ENVIRONMENT === "production");
  if (problem) throw errors.invalidParam("url", `Invalid webhook URL: ${problem}.`);
  return c.json(await store.createEndpoint(c.env.DB, tenant, url, events), 201);
});

webhooks.get("/", async (c) => c.json({ object: "list", data: await store.listEndpoints(c.env.DB, c.req.param("tenant")!) }));

webhooks.delete("/:id", async (c) => {
  await store.deleteEndpoint(c.env.DB, c.req.param("tenant")!, c.req.param("id"));
  return c.json({ id: c.req.param("id"), deleted: true });
});

webhooks.post("/:id/enable", async (c) => c.json(await store.enableEndpoint(c.env.DB, c.req.param("tenant")!, c.req.param("id"))));

webhooks.post("/:id/rotate-secret", async (c) => {
  const { overlap_seconds } = await optionalBodyOf(c, RotateSecretSchema);
  return c.json(await store.rotateSecret(c.env.DB, c.req.param("tenant")!, c.req.param("id"), overlap_seconds));
});

webhooks.post("/:id/replay", async (c) => {
  const replay = await bodyOf(c, ReplaySchema);
  if (replay.to <= replay.from) throw errors.invalidParam("to", "to must be after from.");
  await store.endpointRow(c.env.DB, c.req.param("tenant")!, c.req.param("id"));
  const ep = (await store.endpointForDelivery(c.env.DB, c.req.param("id")))!;
  return c.json(await replayRange(c.env, ep, replay), 202);
});

const DeliveriesQuerySchema = PageQuerySchema.extend({ status: DeliveryStatusSchema.optional() });

webhooks.get("/:id/deliveries", async (c) => {
  const { status, ...page } = validateBody(DeliveriesQuerySchema, c.req.query());
  return c.json(await store.listDeliveries(c.env.DB, c.req.param("tenant")!, c.req.param("id"), page, status));
});

/** Sends a dead (or cancelled) delivery again, as the same message. */
webhooks.post("/:id/deliveries/:delivery/retry", async (c) => {
  const d = await store.deliveryOf(c.env.DB, c.req.param("tenant")!, c.req.param("id"), c.req.param("delivery"));
  if (d.status === "delivered") throw errors.conflict("That delivery already succeeded.", "already_delivered");
  await c.env.DB.prepare("UPDATE webhook_deliveries SET status = 'pending', attempts = 0, dead_at = NULL WHERE id = ?").bind(d.id).run();
  await c.env.WEBHOOK_QUEUE.send({ delivery_id: d.id });
  return c.json({ id: d.id, status: "pending" }, 202);
});
