import type { MiddlewareHandler } from "hono";
import { bearerToken, constantTimeEqual } from "../../../src/auth/api-keys.js";
import { ApiError } from "../../../src/openai/errors.js";
import type { AppEnv } from "../env.js";

/** The admin API answers only to `Authorization: Bearer $GATEWAY_ADMIN_TOKEN`, compared in constant time. */
export const adminAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const expected = c.env.GATEWAY_ADMIN_TOKEN;
  if (!expected) {
    throw new ApiError(401, "The admin API is disabled: GATEWAY_ADMIN_TOKEN is not configured.", {
      code: "admin_disabled",
    });
  }
  const token = bearerToken(c.req.header("authorization"));
  if (!token || !constantTimeEqual(token, expected)) {
    throw new ApiError(401, "Invalid admin token.", { code: "invalid_admin_token" });
  }
  await next();
};
