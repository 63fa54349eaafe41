import type { MiddlewareHandler } from "hono";
import { bearerToken } from "../../../src/auth/api-keys.js";
import { errors } from "../../../src/openai/errors.js";
import { authenticateKey } from "../auth/key-store.js";
import type { AppEnv } from "../env.js";

/** Resolves `Authorization: Bearer sk-…` to a tenant and key, or answers 401/403. */
export const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearerToken(c.req.header("authorization"));
  if (!token) throw errors.missingApiKey();
  const settings = c.get("settings");
  const auth = await authenticateKey(c.env.DB, token, settings.authCacheTtlSeconds, (p) =>
    c.executionCtx.waitUntil(p.catch((e) => console.error("last_used_at update failed", String(e)))),
  );
  c.set("auth", auth);
  await next();
};
