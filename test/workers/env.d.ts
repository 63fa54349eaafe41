import type { D1Migration } from "cloudflare:test";
import type { Env as GatewayEnv } from "../../workers/gateway/env.js";

declare module "vitest" {
  export interface ProvidedContext {
    upstreamUrl: string;
  }
}

declare global {
  namespace Cloudflare {
    interface Env extends GatewayEnv {
      TEST_MIGRATIONS: D1Migration[];
      UPSTREAM_URL: string;
    }
  }
}
