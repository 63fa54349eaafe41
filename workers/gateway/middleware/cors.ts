import { cors } from "hono/cors";

/**
 * Browsers may call `/v1/*` from any origin, as they may OpenAI's API: a key travels in the Authorization header,
 * never in cookies, so no origin gains anything another lacks. A preflight is answered before authentication
 * (it carries no key); every answer, errors included, lets the page read the headers clients act on.
 */
export const publicCors = cors({
  origin: "*",
  allowMethods: ["GET", "POST", "OPTIONS"],
  exposeHeaders: [
    "x-request-id",
    "x-client-request-id",
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "x-cache",
    "x-backend-pod",
    "x-backend-region",
  ],
  maxAge: 86_400,
});
