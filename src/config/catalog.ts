import { z } from "zod";
import { PriceSchema } from "../metering/pricing.js";

/**
 * The models the gateway serves (what /v1/models lists). Backends come from the registry (regions and pods,
 * routed by location, health and prefix affinity); `upstreams` adds fixed URLs tried after them — a hosted
 * engine, or the only backends of a setup without a registry.
 */
export const CatalogEntrySchema = z.object({
  id: z.string().min(1),
  owned_by: z.string().default("moe-edge"),
  created: z.number().int().default(0),
  context_length: z.number().int().positive().optional(),
  /** USD per million tokens; turns usage into the cost recorded in the ledger. */
  pricing: PriceSchema.optional(),
  /** Completion budget assumed for rate limiting when a request sets no max_tokens. */
  default_max_tokens: z.number().int().positive().default(1024),
  upstreams: z.array(z.url({ protocol: /^https?$/ })).default([]),
  /** Sent as `Authorization: Bearer …` to upstreams that need their own key (an external vLLM, say). */
  upstream_api_key: z.string().optional(),
  /** The name the upstream knows the model by, when it differs from the public id. */
  upstream_model: z.string().optional(),
  /**
   * This model's own UPSTREAM_TIMEOUT_MS (first byte, per attempt). An engine that sends nothing until a
   * non-streamed answer is whole (vLLM, SGLang, a hosted API) needs its longest generation here; our pods send
   * their headers at once.
   */
  upstream_timeout_ms: z.number().int().positive().optional(),
  /** This model's own UPSTREAM_IDLE_TIMEOUT_MS (the longest silence inside an answer). */
  upstream_idle_timeout_ms: z.number().int().positive().optional(),
});
export type CatalogEntry = z.infer<typeof CatalogEntrySchema>;

export const CatalogSchema = z.array(CatalogEntrySchema).refine(
  (list) => new Set(list.map((m) => m.id)).size === list.length,
  "model ids must be unique",
);
export type Catalog = z.infer<typeof CatalogSchema>;

/** Accepts the catalog as a JSON string (a var or secret) or as an already-parsed value (wrangler [vars] table). */
export function parseCatalog(raw: unknown): Catalog {
  const value = typeof raw === "string" ? JSON.parse(raw) : raw;
  return CatalogSchema.parse(value ?? []);
}
