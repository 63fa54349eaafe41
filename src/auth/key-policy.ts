import type { ResponseCacheSettings } from "../admin/schemas.js";
import type { Limits } from "../limits/limits.js";

/** What the edge knows about a key after looking up its hash. */
export interface KeyRecord {
  id: string;
  tenantId: string;
  keyHash: string;
  status: "active" | "revoked";
  tenantStatus: "active" | "suspended";
  /** Allowed model ids; null = every model in the catalog. */
  models: string[] | null;
  expiresAt: number | null;
  lastUsedAt: number | null;
  keyLimits: Limits | null;
  tenantLimits: Limits | null;
  responseCache: ResponseCacheSettings;
}

export type KeyVerdict = { ok: true } | { ok: false; reason: "unknown" | "revoked" | "expired" | "tenant_suspended" };

/** Whether a looked-up key may be used now (unix seconds). Every failure reads as 401 to the client. */
export function judgeKey(record: KeyRecord | null, nowSec: number): KeyVerdict {
  if (!record) return { ok: false, reason: "unknown" };
  if (record.status !== "active") return { ok: false, reason: "revoked" };
  if (record.expiresAt !== null && record.expiresAt <= nowSec) return { ok: false, reason: "expired" };
  if (record.tenantStatus !== "active") return { ok: false, reason: "tenant_suspended" };
  return { ok: true };
}

export function modelAllowed(record: Pick<KeyRecord, "models">, model: string): boolean {
  return record.models === null || record.models.includes(model);
}

/** last_used_at is a coarse signal; writing it on every request would put a D1 write on the hot path. */
export const LAST_USED_RESOLUTION_SEC = 60;
export function shouldTouchLastUsed(record: Pick<KeyRecord, "lastUsedAt">, nowSec: number): boolean {
  return record.lastUsedAt === null || nowSec - record.lastUsedAt >= LAST_USED_RESOLUTION_SEC;
}
