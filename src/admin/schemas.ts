import { z } from "zod";
import { LimitsSchema } from "../limits/limits.js";

/** Admin API bodies and objects; the worker validates with these and the CLI types its output from them. */

export const TenantStatusSchema = z.enum(["active", "suspended"]);

/** Edge response cache for a tenant's deterministic requests (temperature 0 or a seed). */
export const ResponseCacheSettingsSchema = z.object({
  enabled: z.boolean().default(true),
  ttl_seconds: z.number().int().min(1).max(7 * 24 * 3600).default(3600),
});
export type ResponseCacheSettings = z.infer<typeof ResponseCacheSettingsSchema>;
export const DEFAULT_RESPONSE_CACHE: ResponseCacheSettings = { enabled: true, ttl_seconds: 3600 };

export const CreateTenantSchema = z.object({
  name: z.string().trim().min(1, "name must not be empty").max(200),
  limits: LimitsSchema.nullish(),
  response_cache: ResponseCacheSettingsSchema.nullish(),
});

export const UpdateTenantSchema = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    status: TenantStatusSchema.optional(),
    limits: LimitsSchema.nullable().optional(),
    response_cache: ResponseCacheSettingsSchema.nullable().optional(),
  })
  .refine((v) => Object.values(v).some((x) => x !== undefined), "nothing to update: send name, status, limits and/or response_cache");

export const TenantSchema = z.object({
  id: z.string(),
  object: z.literal("tenant"),
  name: z.string(),
  status: TenantStatusSchema,
  limits: LimitsSchema.nullable(),
  response_cache: ResponseCacheSettingsSchema,
  created_at: z.number().int(),
  updated_at: z.number().int(),
});
export type Tenant = z.infer<typeof TenantSchema>;

export const CreateKeySchema = z.object({
  name: z.string().trim().max(200).nullish(),
  models: z.array(z.string().min(1).max(256)).max(256).nullish(),
  /** Unix seconds; must be in the future. */
  expires_at: z.number().int().positive().nullish(),
  /** Import an existing key (e.g. when migrating from another gateway); otherwise one is generated. */
  key: z.string().min(20).max(256).regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces").optional(),
  /** Limits of this key, applied within the tenant's. */
  limits: LimitsSchema.nullish(),
});

export const UpdateKeySchema = z
  .object({
    name: z.string().trim().max(200).nullable().optional(),
    models: z.array(z.string().min(1).max(256)).max(256).nullable().optional(),
    limits: LimitsSchema.nullable().optional(),
  })
  .refine((v) => v.name !== undefined || v.models !== undefined || v.limits !== undefined, "nothing to update: send name, models and/or limits");

export const RotateKeySchema = z.object({
  /** How long the old key keeps working after rotation; 0 revokes it at once. */
  grace_seconds: z.number().int().min(0).max(7 * 24 * 3600).default(0),
});

export const ApiKeySchema = z.object({
  id: z.string(),
  object: z.literal("api_key"),
  tenant_id: z.string(),
  name: z.string().nullable(),
  display_prefix: z.string(),
  models: z.array(z.string()).nullable(),
  limits: LimitsSchema.nullable(),
  expires_at: z.number().int().nullable(),
  status: z.enum(["active", "revoked"]),
  created_at: z.number().int(),
  last_used_at: z.number().int().nullable(),
  revoked_at: z.number().int().nullable(),
  rotated_from: z.string().nullable(),
});
export type ApiKey = z.infer<typeof ApiKeySchema>;
