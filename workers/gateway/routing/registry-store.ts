import { nowSeconds } from "../../../src/ids.js";
import { errors } from "../../../src/openai/errors.js";
import type { Pod, Region, Registry } from "../../../src/routing/registry.js";

/**
 * The registry lives in D1 (one consistent source of truth, editable through the admin API) and is cached per
 * isolate for `REGISTRY_CACHE_MS`: the hot path reads memory, and an edit made here is seen here at once.
 */
let cached: { at: number; registry: Registry } | null = null;

export function invalidateRegistry(): void {
  cached = null;
}

interface PodRow {
  id: string;
  region_id: string;
  url: string;
  models: string;
  capacity: number;
  kind: Pod["kind"];
  enabled: number;
}

const toPod = (r: PodRow): Pod => ({
  id: r.id,
  region: r.region_id,
  url: r.url,
  models: JSON.parse(r.models) as string[],
  capacity: r.capacity,
  kind: r.kind,
  enabled: r.enabled === 1,
});

export async function readRegistry(db: D1Database): Promise<Registry> {
  const [regions, pods] = await db.batch<Record<string, unknown>>([
    db.prepare("SELECT id, name, latitude, longitude FROM regions ORDER BY id"),
    db.prepare("SELECT id, region_id, url, models, capacity, kind, enabled FROM pods ORDER BY id"),
  ]);
  return {
    regions: regions!.results as unknown as Region[],
    pods: (pods!.results as unknown as PodRow[]).map(toPod),
  };
}

export async function cachedRegistry(db: D1Database, ttlMs: number): Promise<Registry> {
  const now = Date.now();
  if (cached && now - cached.at < ttlMs) return cached.registry;
  const registry = await readRegistry(db);
  cached = { at: now, registry };
  return registry;
}

export async function upsertRegion(db: D1Database, r: Region): Promise<{ region: Region; created: boolean }> {
  const now = nowSeconds();
  const existing = await db.prepare("SELECT id FROM regions WHERE id = ?").bind(r.id).first();
  await db
    .prepare(
      `INSERT INTO regions (id, name, latitude, longitude, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, latitude = excluded.latitude, longitude = excluded.longitude, updated_at = excluded.updated_at`,
    )
    .bind(r.id, r.name, r.latitude, r.longitude, now, now)
    .run();
  invalidateRegistry();
  return { region: r, created: !existing };
}

export async function deleteRegion(db: D1Database, id: string): Promise<void> {
  const pods = await db.prepare("SELECT COUNT(*) AS n FROM pods WHERE region_id = ?").bind(id).first<{ n: number }>();
  if (pods && pods.n > 0) throw errors.conflict(`Region '${id}' still has ${pods.n} backend(s); remove them first.`, "region_not_empty");
  const r = await db.prepare("DELETE FROM regions WHERE id = ?").bind(id).run();
  if (!r.meta.changes) throw errors.notFound(`No region with id '${id}'.`);
  invalidateRegistry();
}

export async function upsertPod(db: D1Database, p: Pod): Promise<{ pod: Pod; created: boolean }> {
  const region = await db.prepare("SELECT id FROM regions WHERE id = ?").bind(p.region).first();
  if (!region) throw errors.invalidParam("region", `No region with id '${p.region}'.`);
  const existing = await db.prepare("SELECT id FROM pods WHERE id = ?").bind(p.id).first();
  const now = nowSeconds();
  await db
    .prepare(
      `INSERT INTO pods (id, region_id, url, models, capacity, kind, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET region_id = excluded.region_id, url = excluded.url, models = excluded.models,
         capacity = excluded.capacity, kind = excluded.kind, enabled = excluded.enabled, updated_at = excluded.updated_at`,
    )
    .bind(p.id, p.region, p.url, JSON.stringify(p.models), p.capacity, p.kind, p.enabled ? 1 : 0, now, now)
    .run();
  invalidateRegistry();
  return { pod: p, created: !existing };
}

export async function deletePod(db: D1Database, id: string): Promise<void> {
  const r = await db.prepare("DELETE FROM pods WHERE id = ?").bind(id).run();
  if (!r.meta.changes) throw errors.notFound(`No backend with id '${id}'.`);
  invalidateRegistry();
}

export async function podsOfRegion(db: D1Database, region: string): Promise<Pod[]> {
  const { results } = await db
    .prepare("SELECT id, region_id, url, models, capacity, kind, enabled FROM pods WHERE region_id = ? ORDER BY id")
    .bind(region)
    .all<PodRow>();
  return results.map(toPod);
}
