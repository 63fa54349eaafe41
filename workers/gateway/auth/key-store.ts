import { constantTimeEqual, displayPrefix, hashApiKey, isWellFormedKey } from "../../../src/auth/api-keys.js";
import { judgeKey, shouldTouchLastUsed, type KeyRecord } from "../../../src/auth/key-policy.js";
import { TtlCache } from "../../../src/cache/ttl-cache.js";
import { ApiError, errors } from "../../../src/openai/errors.js";
import { nowSeconds } from "../../../src/ids.js";
import type { Limits } from "../../../src/limits/limits.js";
import { DEFAULT_RESPONSE_CACHE, type ResponseCacheSettings } from "../../../src/admin/schemas.js";

export interface AuthContext {
  tenantId: string;
  keyId: string;
  models: string[] | null;
  keyLimits: Limits | null;
  tenantLimits: Limits | null;
  responseCache: ResponseCacheSettings;
  /** `sk-...abcd`: the only form of the key that may appear in logs or messages. */
  display: string;
}

/**
 * Key lookups are cached per isolate for `authCacheTtlSeconds` (default 30 s), negative results included, so
 * the hot path costs one SHA-256 and a map lookup. A revocation, a change of limits or an imported key through
 * the admin API drops the entry in the isolate that served it at once; every other isolate sees it within the TTL.
 */
const cache = new TtlCache<string, KeyRecord | null>(10_000);

interface KeyRow {
  id: string;
  tenant_id: string;
  key_hash: string;
  status: "active" | "revoked";
  tenant_status: "active" | "suspended";
  models: string | null;
  expires_at: number | null;
  last_used_at: number | null;
  key_limits: string | null;
  tenant_limits: string | null;
  tenant_cache: string | null;
}

async function lookup(db: D1Database, keyHash: string): Promise<KeyRecord | null> {
  const row = await db
    .prepare(
      `SELECT k.id, k.tenant_id, k.key_hash, k.status, t.status AS tenant_status, k.models, k.expires_at, k.last_used_at,
              k.limits AS key_limits, t.limits AS tenant_limits, t.response_cache AS tenant_cache
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = ?`,
    )
    .bind(keyHash)
    .first<KeyRow>();
  if (!row) return null;
  return {
    id: row.id,
    tenantId: row.tenant_id,
    keyHash: row.key_hash,
    status: row.status,
    tenantStatus: row.tenant_status,
    models: row.models === null ? null : (JSON.parse(row.models) as string[]),
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
    keyLimits: row.key_limits === null ? null : (JSON.parse(row.key_limits) as Limits),
    tenantLimits: row.tenant_limits === null ? null : (JSON.parse(row.tenant_limits) as Limits),
    responseCache: row.tenant_cache === null ? DEFAULT_RESPONSE_CACHE : (JSON.parse(row.tenant_cache) as ResponseCacheSettings),
  };
}

export function forgetKeyHash(keyHash: string): void {
  cache.delete(keyHash);
}

/** Resolves a presented key to its tenant, or throws the 401/403 the client should see. */
export async function authenticateKey(
  db: D1Database,
  presented: string,
  ttlSeconds: number,
  waitUntil: (p: Promise<unknown>) => void,
): Promise<AuthContext> {
  const display = displayPrefix(presented);
  if (!isWellFormedKey(presented)) throw errors.invalidApiKey(display);
  const keyHash = await hashApiKey(presented);
  const nowMs = Date.now();
  let record = cache.get(keyHash, nowMs);
  if (record === undefined) {
    record = await lookup(db, keyHash);
    cache.set(keyHash, record, ttlSeconds * 1000, nowMs);
  }
  // The index lookup matched on the hash already; compare again in constant time so no code path depends on
  // a variable-time string comparison of key material.
  if (record && !constantTimeEqual(record.keyHash, keyHash)) record = null;
  const nowSec = nowSeconds();
  const verdict = judgeKey(record, nowSec);
  if (!verdict.ok) {
    switch (verdict.reason) {
      case "revoked":
        throw new ApiError(401, `The API key ${display} has been revoked.`, { code: "invalid_api_key" });
      case "expired":
        throw new ApiError(401, `The API key ${display} has expired.`, { code: "invalid_api_key" });
      case "tenant_suspended":
        throw new ApiError(403, "The account this API key belongs to is suspended.", {
          type: "permission_error",
          code: "account_suspended",
        });
      default:
        throw errors.invalidApiKey(display);
    }
  }
  const ok = record!;
  if (shouldTouchLastUsed(ok, nowSec)) {
    ok.lastUsedAt = nowSec;
    waitUntil(db.prepare("UPDATE api_keys SET last_used_at = ? WHERE id = ?").bind(nowSec, ok.id).run());
  }
  return { tenantId: ok.tenantId, keyId: ok.id, models: ok.models, keyLimits: ok.keyLimits, tenantLimits: ok.tenantLimits, responseCache: ok.responseCache, display };
}
