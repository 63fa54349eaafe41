import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { DEFAULT_RESPONSE_CACHE } from "../../src/admin/schemas.js";
import { ApiError } from "../../src/openai/errors.js";
import type { AppEnv } from "../../workers/gateway/env.js";
import { settingsFor } from "../../workers/gateway/env.js";
import { admit } from "../../workers/gateway/limits/enforce.js";

/**
 * `admit` on its own, against the real limiter object. A handler whose client leaves is torn down by workerd at
 * its next await and never holds or settles a ticket: the route below stands for it by dropping the ticket.
 */
function admissionApp(tenantId: string) {
  const app = new Hono<AppEnv>();
  app.use(async (c, next) => {
    c.set("requestId", `req_${crypto.randomUUID()}`);
    c.set("settings", settingsFor(c.env));
    c.set("auth", { tenantId, keyId: "key_1", models: null, keyLimits: null, tenantLimits: { max_concurrent: 1 }, responseCache: DEFAULT_RESPONSE_CACHE, display: "sk-...test" });
    await next();
  });
  app.post("/", async (c) => {
    await admit(c, 10);
    return c.text("admitted");
  });
  app.onError((e) => new Response(e.message, { status: e instanceof ApiError ? e.status : 500 }));
  return app;
}

describe("admission and a client that leaves", () => {
  it("a client that leaves while its admission is decided does not keep its concurrency slot", async () => {
    const app = admissionApp(`tenant-${crypto.randomUUID()}`);
    const client = new AbortController();
    const first = createExecutionContext();
    // The limiter call is in flight when fetch returns its promise; the client leaves before it is answered.
    const admitted = app.fetch(new Request("http://gw/", { method: "POST", signal: client.signal }), env, first);
    client.abort();
    expect((await admitted).status).toBe(200);
    await waitOnExecutionContext(first);
    const next = createExecutionContext();
    const again = await app.fetch(new Request("http://gw/", { method: "POST" }), env, next);
    expect(again.status).toBe(200);
    await waitOnExecutionContext(next);
  });

  it("a client that stays keeps its slot until its ticket is settled", async () => {
    const app = admissionApp(`tenant-${crypto.randomUUID()}`);
    const first = createExecutionContext();
    expect((await app.fetch(new Request("http://gw/", { method: "POST" }), env, first)).status).toBe(200);
    await waitOnExecutionContext(first);
    const second = createExecutionContext();
    const refused = await app.fetch(new Request("http://gw/", { method: "POST" }), env, second);
    expect(refused.status).toBe(429);
    expect(await refused.text()).toMatch(/concurrent requests/);
    await waitOnExecutionContext(second);
  });
});
