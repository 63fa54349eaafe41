import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const DEAD = "http://127.0.0.1:9"; // discard port: nothing listens, connections are refused

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node" },
      },
      {
        test: { name: "deploy", include: ["test/deploy/**/*.test.ts"], environment: "node", testTimeout: 60_000 },
      },
      {
        test: { name: "engine", include: ["test/engine/**/*.test.ts"], environment: "node", testTimeout: 120_000, hookTimeout: 120_000 },
      },
      {
        test: {
          name: "integration",
          include: ["test/pod/**/*.test.ts", "test/e2e/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/support/tiny-model-setup.ts"],
          // Each file runs real processes (pods, wrangler); one at a time keeps two cores from thrashing.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        plugins: [
          cloudflareTest(async ({ inject }) => {
            const upstream = inject<string>("upstreamUrl");
            const price = { input_per_mtok: 0.27, cached_input_per_mtok: 0.07, output_per_mtok: 1.1 };
            const models: Record<string, unknown>[] = ["test-echo", "test-500", "test-400", "test-garbage", "test-redirect", "test-slow", "test-cut", "test-hold", "test-brief", "test-big"].map((id) => ({
              id,
              upstreams: [upstream],
              pricing: price,
            }));
            models.push(
              { id: "test-failover", upstreams: [DEAD, upstream], upstream_model: "test-echo" } as never,
              { id: "test-dead", upstreams: [DEAD, DEAD] },
              { id: "test-big-alias", upstreams: [upstream], upstream_model: "test-big" } as never,
              { id: "test-all-500", upstreams: [upstream, upstream], upstream_model: "test-500" } as never,
              { id: "test-refused", upstreams: [`${upstream}/denied`, `${upstream}/elsewhere`], upstream_model: "test-echo" } as never,
              { id: "test-refused-failover", upstreams: [`${upstream}/denied`, upstream], upstream_model: "test-echo" } as never,
              { id: "test-v1-base", upstreams: [`${upstream}/v1`], upstream_model: "test-echo" } as never,
              { id: "test-late", upstreams: [upstream] },
              { id: "test-late-strict", upstreams: [upstream], upstream_model: "test-late", upstream_timeout_ms: 300 } as never,
              { id: "test-late-patient", upstreams: [upstream], upstream_model: "test-late", upstream_idle_timeout_ms: 4000 } as never,
              { id: "test-registry", upstreams: [] } as never,
              { id: "test-unserved", upstreams: [] } as never,
            );
            return {
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: {
                  GATEWAY_ADMIN_TOKEN: "test-admin-token",
                  POD_SHARED_SECRET: "test-pod-secret",
                  HEALTH_SNAPSHOT_MS: "100",
                  REGISTRY_CACHE_MS: "0",
                  WEBHOOK_BACKOFF_BASE_SECONDS: "0",
                  MODELS: JSON.stringify(models),
                  AUTH_CACHE_TTL_SECONDS: "1",
                  UPSTREAM_TIMEOUT_MS: "5000",
                  UPSTREAM_IDLE_TIMEOUT_MS: "1000",
                  MAX_BUFFERED_ANSWER_BYTES: "65536",
                  TEST_MIGRATIONS: await readD1Migrations("workers/gateway/migrations"),
                  UPSTREAM_URL: upstream,
                },
              },
            };
          }),
        ],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          globalSetup: ["test/workers/global-setup.ts"],
          setupFiles: ["test/workers/apply-migrations.ts"],
        },
      },
    ],
  },
});
