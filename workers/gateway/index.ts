import { createApp } from "./app.js";
import { consumeUsage } from "./metering/usage-consumer.js";
import { deliverWebhooks } from "./webhooks/deliver.js";
import { hourlyWebhooks } from "./webhooks/scheduled.js";
import type { Env } from "./env.js";

export { TenantLimiterObject } from "./limits/tenant-limiter.js";
export { RegionMonitor } from "./routing/region-monitor.js";

const app = createApp();

export default {
  fetch: app.fetch,
  async queue(batch, env) {
    if (batch.queue.startsWith("usage-events")) return consumeUsage(batch, env);
    if (batch.queue.startsWith("webhook-deliveries")) return deliverWebhooks(batch, env);
    console.error(JSON.stringify({ msg: "message batch from an unknown queue", queue: batch.queue }));
    batch.retryAll();
  },
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(hourlyWebhooks(env));
  },
} satisfies ExportedHandler<Env>;
