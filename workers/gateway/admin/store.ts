import { DEFAULT_RESPONSE_CACHE, type ApiKey, type ResponseCacheSettings, type Tenant } from "../../../src/admin/schemas.js";
import type { Limits } from "../../../src/limits/limits.js";
import { displayPrefix, generateApiKey, hashApiKey } from "../../../src/auth/api-keys.js";
import { newId, nowSeconds } from "../../../src/ids.js";
import { errors } from "../../../src/openai/errors.js";
import { toPage, type Page, type PageQuery } from "../../../src/admin/pagination.js";
import { EVERY, pageRows } from "./keyset.js";

/** D1 access for tenants and keys. Every function maps rows to the admin API's objects. */

interface TenantRow {
  id: string;
  name: string;
  status: Tenant["status"];
  limits: string | null;
  response_cache: string | null;
  created_at: number;
  updated_at: number;
}

interface KeyRow {
  id: string;
  tenant_id: string;
  name: string | null;
  display_prefix: string;
  key_hash: string;
  models: string | null;
  limits: string | null;
  expires_at: number | null;
  status: ApiKey["status"];
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  rotated_from: string | null;
}

const json = <T>(s: string | null): T | null => (s === null ? null : (JSON.parse(s) as T));
const limitsJson = (l: Limits | null | undefined): string | null => (l ? JSON.stringify(l) : null);

const toTenant = (r: TenantRow): Tenant => ({
  id: r.id,
  object: "tenant",
  name: r.name,
  status: r.status,
  limits: json<Limits>(r.limits),
  response_cache: json<ResponseCacheSettings>(r.response_cache) ?? DEFAULT_RESPONSE_CACHE,
  created_at: r.created_at,
  updated_at: r.updated_at,
});

const toKey = (r: KeyRow): ApiKey => ({
  id: r.id,
  object: "api_key",
  tenant_id: r.tenant_id,
  name: r.name,
  display_prefix: r.display_prefix,
  models: json<string[]>(r.models),
  limits: json<Limits>(r.limits),
  expires_at: r.expires_at,
  status: r.status,
  created_at: r.created_at,
  last_used_at: r.last_used_at,
  revoked_at: r.revoked_at,
  rotated_from: r.rotated_from,
});

export async function createTenant(db: D1Database, name: string, limits?: Limits | null, cache?: ResponseCacheSettings | null): Promise<Tenant> {
  const now = nowSeconds();
  const row: TenantRow = { id: newId("ten_"), name, status: "active", limits: limitsJson(limits), response_cache: cache ? JSON.stringify(cache) : null, created_at: now, updated_at: now };
  await db
    .prepare("INSERT INTO tenants (id, name, status, limits, response_cache, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
    .bind(row.id, row.name, row.status, row.limits, row.response_cache, row.created_at, row.updated_at)
    .run();
  return toTenant(row);
}

export async function getTenant(db: D1Database, id: string): Promise<Tenant> {
  const row = await db.prepare("SELECT * FROM tenants WHERE id = ?").bind(id).first<TenantRow>();
  if (!row) throw errors.notFound(`No tenant with id '${id}'.`);
  return toTenant(row);
}

export async function listTenants(db: D1Database, q: PageQuery, name?: string): Promise<Page<Tenant>> {
  const rows = await pageRows<TenantRow>(db, "tenants", EVERY, name ? { sql: "name = ?", binds: [name] } : EVERY, q, "asc");
  return toPage(rows.map(toTenant), q.limit);
}

export async function updateTenant(
  db: D1Database,
  id: string,
  patch: { name?: string; status?: Tenant["status"]; limits?: Limits | null; response_cache?: ResponseCacheSettings | null },
): Promise<{ tenant: Tenant; keyHashes: string[] }> {
  const current = await getTenant(db, id);
  const next: Tenant = { ...current, ...patch, response_cache: patch.response_cache === null ? DEFAULT_RESPONSE_CACHE : (patch.response_cache ?? current.response_cache), updated_at: nowSeconds() };
  await db
    .prepare("UPDATE tenants SET name = ?, status = ?, limits = ?, response_cache = ?, updated_at = ? WHERE id = ?")
    .bind(next.name, next.status, limitsJson(next.limits), JSON.stringify(next.response_cache), next.updated_at, id)
    .run();
  const { results } = await db.prepare("SELECT key_hash FROM api_keys WHERE tenant_id = ?").bind(id).all<{ key_hash: string }>();
  return { tenant: next, keyHashes: results.map((r) => r.key_hash) };
}

export interface NewKey {
  name?: string | null;
  models?: string[] | null;
  expires_at?: number | null;
  key?: string;
  limits?: Limits | null;
  rotated_from?: string | null;
}

export async function createKey(db: D1Database, tenantId: string, spec: NewKey): Promise<ApiKey & { key: string }> {
  const tenant = await getTenant(db, tenantId);
  if (tenant.status !== "active") throw errors.conflict(`Tenant '${tenantId}' is ${tenant.status}; keys cannot be issued.`);
  const now = nowSeconds();
  if (spec.expires_at != null && spec.expires_at <= now) {
    throw errors.invalidParam("expires_at", "expires_at must be in the future (unix seconds).");
  }
  const plaintext = spec.key ?? generateApiKey();
  const row: KeyRow = {
    id: newId("key_"),
    tenant_id: tenantId,
    name: spec.name ?? null,
    display_prefix: displayPrefix(plaintext),
    key_hash: await hashApiKey(plaintext),
    models: spec.models ? JSON.stringify([...new Set(spec.models)]) : null,
    limits: limitsJson(spec.limits),
    expires_at: spec.expires_at ?? null,
    status: "active",
    created_at: now,
    last_used_at: null,
    revoked_at: null,
    rotated_from: spec.rotated_from ?? null,
  };
  try {
    await db
      .prepare(
        `INSERT INTO api_keys (id, tenant_id, name, display_prefix, key_hash, models, limits, expires_at, status, created_at, rotated_from)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .bind(row.id, row.tenant_id, row.name, row.display_prefix, row.key_hash, row.models, row.limits, row.expires_at, row.status, row.created_at, row.rotated_from)
      .run();
  } catch (e) {
    if (String(e).includes("UNIQUE")) throw errors.conflict("That key is already registered.", "key_exists");
    throw e;
  }
  return { ...toKey(row), key: plaintext };
}

export async function listKeys(db: D1Database, tenantId: string, q: PageQuery): Promise<Page<ApiKey>> {
  await getTenant(db, tenantId);
  return toPage((await pageRows<KeyRow>(db, "api_keys", { sql: "tenant_id = ?", binds: [tenantId] }, EVERY, q, "asc")).map(toKey), q.limit);
}

async function getKeyRow(db: D1Database, id: string): Promise<KeyRow> {
  const row = await db.prepare("SELECT * FROM api_keys WHERE id = ?").bind(id).first<KeyRow>();
  if (!row) throw errors.notFound(`No API key with id '${id}'.`);
  return row;
}

/** Revokes a key (idempotent). Returns the key and its hash so the caller can drop it from the auth cache. */
export async function revokeKey(db: D1Database, id: string): Promise<{ key: ApiKey; keyHash: string }> {
  const row = await getKeyRow(db, id);
  if (row.status !== "revoked") {
    row.status = "revoked";
    row.revoked_at = nowSeconds();
    await db.prepare("UPDATE api_keys SET status = 'revoked', revoked_at = ? WHERE id = ?").bind(row.revoked_at, id).run();
  }
  return { key: toKey(row), keyHash: row.key_hash };
}

/**
 * Issues a successor with the same tenant, name, models and expiry. The old key is revoked at once, or keeps
 * working for `graceSeconds` (its expiry is pulled in) so clients can switch without an outage.
 */
export async function rotateKey(
  db: D1Database,
  id: string,
  graceSeconds: number,
): Promise<{ key: ApiKey & { key: string }; oldKeyHash: string }> {
  const old = await getKeyRow(db, id);
  if (old.status === "revoked") throw errors.conflict(`API key '${id}' is revoked and cannot be rotated.`, "key_revoked");
  const now = nowSeconds();
  if (old.expires_at !== null && old.expires_at <= now) {
    throw errors.conflict(`API key '${id}' has expired and cannot be rotated.`, "key_expired");
  }
  const successor = await createKey(db, old.tenant_id, {
    name: old.name,
    models: json<string[]>(old.models),
    limits: json<Limits>(old.limits),
    expires_at: old.expires_at,
    rotated_from: old.id,
  });
  if (graceSeconds === 0) {
    await db.prepare("UPDATE api_keys SET status = 'revoked', revoked_at = ? WHERE id = ?").bind(now, id).run();
  } else {
    const until = Math.min(old.expires_at ?? Number.MAX_SAFE_INTEGER, now + graceSeconds);
    await db.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?").bind(until, id).run();
  }
  return { key: successor, oldKeyHash: old.key_hash };
}

/** Changes a key's name, models or limits; returns it with its hash (to drop from the auth cache). */
export async function updateKey(
  db: D1Database,
  id: string,
  patch: { name?: string | null; models?: string[] | null; limits?: Limits | null },
): Promise<{ key: ApiKey; keyHash: string }> {
  const row = await getKeyRow(db, id);
  if (patch.name !== undefined) row.name = patch.name;
  if (patch.models !== undefined) row.models = patch.models ? JSON.stringify([...new Set(patch.models)]) : null;
  if (patch.limits !== undefined) row.limits = limitsJson(patch.limits);
  await db.prepare("UPDATE api_keys SET name = ?, models = ?, limits = ? WHERE id = ?").bind(row.name, row.models, row.limits, id).run();
  return { key: toKey(row), keyHash: row.key_hash };
}
