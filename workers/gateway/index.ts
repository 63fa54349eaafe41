import { createApp } from "./app.js";
import type { Env } from "./env.js";

export { TenantLimiterObject } from "./limits/tenant-limiter.js";
export { RegionMonitor } from "./routing/region-monitor.js";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
