import { Hono } from "hono";
import { ApiError, errors } from "../../src/openai/errors.js";
import { settingsFor, type AppEnv } from "./env.js";
import { authenticate } from "./middleware/authenticate.js";
import { publicCors } from "./middleware/cors.js";
import { requestId } from "./middleware/request-id.js";
import { admin } from "./routes/admin.js";
import { inference } from "./routes/inference.js";
import { models } from "./routes/models.js";
import { adminUsage, tenantUsage } from "./routes/usage.js";
import { webhooks } from "./routes/webhooks.js";

/** The gateway: OpenAI-compatible `/v1/*` for tenants, `/admin/*` for operators, `/health` for probes. */
export function createApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use("*", requestId);
  app.use("*", async (c, next) => {
    c.set("settings", settingsFor(c.env));
    await next();
  });

  app.get("/health", (c) => c.json({ status: "ok" }));

  app.use("/v1/*", publicCors);
  app.use("/v1/*", authenticate);
  app.route("/v1/models", models);
  app.route("/v1/usage", tenantUsage);
  app.route("/v1", inference);
  app.route("/admin", admin);
  app.route("/admin/tenants/:tenant/webhooks", webhooks);
  app.route("/admin/tenants/:tenant/usage", adminUsage);

  // Known paths with the wrong method get 405; anything else is an unknown route.
  const known = ["/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/models/*", "/v1/usage"];
  for (const path of known) app.all(path, (c) => { throw errors.methodNotAllowed(c.req.method, c.req.path); });

  app.notFound((c) => {
    const e = errors.unknownRoute(c.req.method, c.req.path);
    return c.json(e.toBody(), 404);
  });

  app.onError((err, c) => {
    if (err instanceof ApiError) {
      return c.json(err.toBody(), err.status as 400, err.headers);
    }
    console.error(JSON.stringify({ msg: "unhandled error", request_id: c.get("requestId"), error: String(err), stack: err.stack }));
    return c.json(errors.internal().toBody(), 500);
  });

  return app;
}
