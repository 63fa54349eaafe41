import { z } from "zod";
import { parseCatalog, type Catalog } from "../../src/config/catalog.js";
import type { AuthContext } from "./auth/key-store.js";

/** Bindings and vars as wrangler.toml declares them. */
export interface Env {
  DB: D1Database;
  REGION_MONITOR: DurableObjectNamespace<import("./routing/region-monitor.js").RegionMonitor>;
  TENANT_LIMITER: DurableObjectNamespace<import("./limits/tenant-limiter.js").TenantLimiterObject>;
  LIMIT_LEASE_MS?: string;
  USAGE_QUEUE: Queue<unknown>;
  WEBHOOK_QUEUE: Queue<{ delivery_id: string }>;
  /** First webhook retry delay; doubles per attempt (with jitter) up to hours. */
  WEBHOOK_BACKOFF_BASE_SECONDS?: string;
  /** Days a finished (delivered, dead, cancelled) webhook delivery is kept; its events stay in the ledger. */
  WEBHOOK_RETENTION_DAYS?: string;
  /** "production": webhook URLs must be https and public. */
  ENVIRONMENT?: string;
  GATEWAY_ADMIN_TOKEN?: string;
  /** Shared with the pods: every request to a pod is signed with it. */
  POD_SHARED_SECRET?: string;
  HEALTH_INTERVAL_MS?: string;
  HEALTH_SNAPSHOT_MS?: string;
  REGISTRY_CACHE_MS?: string;
  UPSTREAM_MAX_ATTEMPTS?: string;
  UPSTREAM_DEADLINE_MS?: string;
  /** The model catalog: JSON string or a [vars] table. */
  MODELS?: unknown;
  MAX_BODY_BYTES?: string;
  AUTH_CACHE_TTL_SECONDS?: string;
  UPSTREAM_TIMEOUT_MS?: string;
  UPSTREAM_IDLE_TIMEOUT_MS?: string;
  MAX_BUFFERED_ANSWER_BYTES?: string;
}

export type AppEnv = {
  Bindings: Env;
  Variables: { requestId: string; auth: AuthContext; settings: Settings };
};

const SettingsSchema = z.object({
  maxBodyBytes: z.coerce.number().int().positive().default(1024 * 1024),
  /** How long a key lookup is trusted at the edge; a revocation takes effect everywhere within this time. */
  authCacheTtlSeconds: z.coerce.number().min(0).default(30),
  /** Deadline for an upstream to send response headers (the first byte), per attempt. */
  upstreamTimeoutMs: z.coerce.number().int().positive().default(30_000),
  /**
   * The longest silence inside an answer, streamed or not, before the upstream counts as stuck. Pods send a
   * keepalive every few seconds while they work (before the first token too).
   */
  upstreamIdleTimeoutMs: z.coerce.number().int().positive().default(60_000),
  /** Backends tried for one request before giving up (failover before the first byte). */
  upstreamMaxAttempts: z.coerce.number().int().positive().default(3),
  /** Total time allowed for all attempts to produce a first byte. */
  upstreamDeadlineMs: z.coerce.number().int().positive().default(60_000),
  /** How old a region's health snapshot may be before the edge refreshes it in the background. */
  healthSnapshotMs: z.coerce.number().int().positive().default(1_000),
  registryCacheMs: z.coerce.number().int().min(0).default(5_000),
  /** How long a concurrency lease lives if its request never settles (a crashed isolate). */
  limitLeaseMs: z.coerce.number().int().positive().default(600_000),
  /**
   * A non-streaming answer up to this size is parsed at the edge (metered, relabelled, cacheable); a larger one
   * passes through as it arrives, so an isolate (128 MB) never holds tens of MB of logprobs and their parse.
   */
  maxBufferedAnswerBytes: z.coerce.number().int().positive().default(4 * 1024 * 1024),
});

export interface Settings extends z.infer<typeof SettingsSchema> {
  catalog: Catalog;
}

let cached: { env: Env; settings: Settings } | undefined;

/** Parsed once per isolate (env is fixed for an isolate's life); a bad config fails loudly at the first request. */
export function settingsFor(env: Env): Settings {
  if (cached?.env === env) return cached.settings;
  const base = SettingsSchema.parse({
    maxBodyBytes: env.MAX_BODY_BYTES || undefined,
    authCacheTtlSeconds: env.AUTH_CACHE_TTL_SECONDS || undefined,
    upstreamTimeoutMs: env.UPSTREAM_TIMEOUT_MS || undefined,
    upstreamIdleTimeoutMs: env.UPSTREAM_IDLE_TIMEOUT_MS || undefined,
    upstreamMaxAttempts: env.UPSTREAM_MAX_ATTEMPTS || undefined,
    upstreamDeadlineMs: env.UPSTREAM_DEADLINE_MS || undefined,
    healthSnapshotMs: env.HEALTH_SNAPSHOT_MS || undefined,
    registryCacheMs: env.REGISTRY_CACHE_MS || undefined,
    limitLeaseMs: env.LIMIT_LEASE_MS || undefined,
    maxBufferedAnswerBytes: env.MAX_BUFFERED_ANSWER_BYTES || undefined,
  });
  const settings = { ...base, catalog: parseCatalog(env.MODELS ?? []) };
  cached = { env, settings };
  return settings;
}
