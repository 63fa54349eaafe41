import { z } from "zod";

export const WEBHOOK_EVENT_TYPES = ["usage.recorded", "usage.hourly"] as const;
export const WebhookEventTypeSchema = z.enum(WEBHOOK_EVENT_TYPES);
export type WebhookEventType = z.infer<typeof WebhookEventTypeSchema>;

/** Where a delivery stands (the table's CHECK lists the same). */
export const DeliveryStatusSchema = z.enum(["pending", "delivered", "dead", "cancelled"]);
export type DeliveryStatus = z.infer<typeof DeliveryStatusSchema>;

export const CreateWebhookSchema = z.object({
  url: z.string().max(2048),
  events: z.array(WebhookEventTypeSchema).min(1).default([...WEBHOOK_EVENT_TYPES]),
});

export const RotateSecretSchema = z.object({
  /** How long the old secret keeps signing next to the new one. */
  overlap_seconds: z.number().int().min(0).max(7 * 24 * 3600).default(24 * 3600),
});

/** Most events one replay call sends: 20 deliveries, one Queue batch, a few MB in the Worker. */
export const MAX_REPLAY_EVENTS = 10_000;

export const ReplaySchema = z.object({
  /** Unix seconds: usage events that ended in [from, to) are sent again. */
  from: z.number().int().nonnegative(),
  to: z.number().int().positive(),
  /** Events this call sends at most; the rest of the range follows with `after`. */
  limit: z.number().int().min(1).max(MAX_REPLAY_EVENTS).default(MAX_REPLAY_EVENTS),
  /** The previous call's `last_event_id`, to resume the range after it. */
  after: z.string().min(1).max(200).optional(),
});
export type ReplayRequest = z.infer<typeof ReplaySchema>;

export const WebhookEndpointSchema = z.object({
  id: z.string(),
  object: z.literal("webhook_endpoint"),
  tenant_id: z.string(),
  url: z.string(),
  events: z.array(WebhookEventTypeSchema),
  status: z.enum(["active", "disabled"]),
  disabled_reason: z.string().nullable(),
  created_at: z.number().int(),
});
export type WebhookEndpoint = z.infer<typeof WebhookEndpointSchema>;
