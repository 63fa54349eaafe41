import type { MiddlewareHandler } from "hono";
import { bearerToken, constantTimeEqual } from "../../../src/auth/api-keys.js";
import { ApiError } from "../../../src/openai/errors.js";
import type { AppEnv } from "../env.js";

/** A deployed gateway's admin token must be long enough that guessing it is hopeless (the admin API has no lockout). */
const MIN_DEPLOYED_TOKEN_LENGTH = 32;

/**
 * The admin API answers only to `Authorization: Bearer $GATEWAY_ADMIN_TOKEN`, compared in constant time. Outside
 * development (ENVIRONMENT), a token shorter than 32 characters keeps the admin API closed.
 */
export const adminAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const expected = c.env.GATEWAY_ADMIN_TOKEN;
  if (!expected) {
    throw new ApiError(401, "The admin API is disabled: GATEWAY_ADMIN_TOKEN is not configured.", {
      code: "admin_disabled",
    });
  }
  if (c.env.ENVIRONMENT !== "development" && expected.length < MIN_DEPLOYED_TOKEN_LENGTH) {
    throw new ApiError(401, `The admin API is disabled: GATEWAY_ADMIN_TOKEN is shorter than ${MIN_DEPLOYED_TOKEN_LENGTH} characters (make one with \`openssl rand -base64 48\`).`, {
      code: "admin_disabled",
    });
  }
  const token = bearerToken(c.req.header("authorization"));
  if (!token || !constantTimeEqual(token, expected)) {
    throw new ApiError(401, "Invalid admin token.", { code: "invalid_admin_token" });
  }
  await next();
};
