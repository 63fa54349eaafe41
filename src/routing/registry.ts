import { z } from "zod";

/**
 * The backend registry: regions (where GPUs are) and the backends in them. `moe-pod` is our pod (signed
 * requests, `/load`); `openai` is any other OpenAI-compatible engine (vLLM, SGLang, llama.cpp's server),
 * health-checked by `/health` and routed to like a pod without a load signal.
 */
export const RegionSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and dashes"),
  name: z.string().max(200).default(""),
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
});
export type Region = z.infer<typeof RegionSchema>;

export const BackendKindSchema = z.enum(["moe-pod", "openai"]);

export const PodSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and dashes"),
  region: z.string().min(1),
  url: z.url({ protocol: /^https?$/ }),
  models: z.array(z.string().min(1)).min(1),
  /** Concurrent sequences the backend is sized for; routing treats it as full beyond this. */
  capacity: z.number().int().positive().default(64),
  kind: BackendKindSchema.default("moe-pod"),
  enabled: z.boolean().default(true),
});
export type Pod = z.infer<typeof PodSchema>;

export interface Registry {
  regions: Region[];
  pods: Pod[];
}

/** What a region's monitor last observed of a pod. */
export const PodHealthSchema = z.object({
  id: z.string(),
  healthy: z.boolean(),
  running: z.number().int().nonnegative().default(0),
  waiting: z.number().int().nonnegative().default(0),
  checkedAt: z.number(),
  breaker: z.enum(["closed", "open"]),
  error: z.string().optional(),
});
export type PodHealth = z.infer<typeof PodHealthSchema>;

export interface RegionSnapshot {
  region: string;
  takenAt: number;
  pods: PodHealth[];
}
