import type { MiddlewareHandler } from "hono";
import { newId } from "../../../src/ids.js";
import type { AppEnv } from "../env.js";

/**
 * Every response carries `x-request-id`. The id is always ours (a client-chosen id could collide with another
 * tenant's usage event id); a client's own id is echoed back as `x-client-request-id`.
 */
export const requestId: MiddlewareHandler<AppEnv> = async (c, next) => {
  const id = newId("req_");
  c.set("requestId", id);
  await next();
  c.res.headers.set("x-request-id", id);
  const clientId = c.req.header("x-client-request-id");
  if (clientId && clientId.length <= 512) c.res.headers.set("x-client-request-id", clientId);
};
