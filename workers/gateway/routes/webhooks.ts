import { Hono, type Context } from "hono";
import type { z } from "zod";
import { readValidBody } from "../../../src/http/request-body.js";
import { errors } from "../../../src/openai/errors.js";
import { CreateWebhookSchema, ReplaySchema, RotateSecretSchema } from "../../../src/webhooks/schemas.js";
import { checkEndpointUrl } from "../../../src/webhooks/url-policy.js";
import { getTenant } from "../admin/store.js";
import type { AppEnv } from "../env.js";
import { replayRange } from "../webhooks/replay.js";
import * as store from "../webhooks/store.js";

/** Admin routes for a tenant's billing webhooks: /admin/tenants/{tenant}/webhooks… */
export const webhooks = new Hono<AppEnv>();

const body = async <S extends z.ZodType>(c: Context<AppEnv>, schema: S): Promise<z.infer<S>> =>
  (await readValidBody(c.req.raw, c.get("settings").maxBodyBytes, schema)).parsed;

webhooks.post("/", async (c) => {
  const tenant = c.req.param("tenant")!;
  await getTenant(c.env.DB, tenant);
  const { url, events } = await body(c, CreateWebhookSchema);
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
  const raw = c.req.header("content-length") === "0" || !c.req.raw.body ? {} : undefined;
  const { overlap_seconds } = raw ? RotateSecretSchema.parse(raw) : await body(c, RotateSecretSchema);
  return c.json(await store.rotateSecret(c.env.DB, c.req.param("tenant")!, c.req.param("id"), overlap_seconds));
});

webhooks.post("/:id/replay", async (c) => {
  const { from, to } = await body(c, ReplaySchema);
  if (to <= from) throw errors.invalidParam("to", "to must be after from.");
  await store.endpointRow(c.env.DB, c.req.param("tenant")!, c.req.param("id"));
  const ep = (await store.endpointForDelivery(c.env.DB, c.req.param("id")))!;
  return c.json(await replayRange(c.env, ep, from, to), 202);
});

webhooks.get("/:id/deliveries", async (c) =>
  c.json({ object: "list", data: await store.listDeliveries(c.env.DB, c.req.param("tenant")!, c.req.param("id"), c.req.query("status")) }),
);

/** Sends a dead (or cancelled) delivery again, as the same message. */
webhooks.post("/:id/deliveries/:delivery/retry", async (c) => {
  const rows = await store.listDeliveries(c.env.DB, c.req.param("tenant")!, c.req.param("id"));
  const d = rows.find((r) => r.id === c.req.param("delivery"));
  if (!d) throw errors.notFound(`No delivery '${c.req.param("delivery")}' for this endpoint.`);
  if (d.status === "delivered") throw errors.conflict("That delivery already succeeded.", "already_delivered");
  await c.env.DB.prepare("UPDATE webhook_deliveries SET status = 'pending', attempts = 0, dead_at = NULL WHERE id = ?").bind(d.id).run();
  await c.env.WEBHOOK_QUEUE.send({ delivery_id: d.id });
  return c.json({ id: d.id, status: "pending" }, 202);
});
