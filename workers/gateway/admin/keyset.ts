import type { PageQuery } from "../../../src/admin/pagination.js";
import { errors } from "../../../src/openai/errors.js";

/** Tables read page by page, each with its order: a sort column and the id that breaks its ties. */
const ORDER = {
  tenants: { sort: "created_at", id: "id" },
  api_keys: { sort: "created_at", id: "id" },
  webhook_deliveries: { sort: "created_at", id: "id" },
  usage_events: { sort: "ended_at", id: "event_id" },
} as const;
type Paged = keyof typeof ORDER;

/** SQL over the table's columns and the values it binds. */
export interface Where {
  sql: string;
  binds: unknown[];
}

export const EVERY: Where = { sql: "1 = 1", binds: [] };

/**
 * The rows strictly past the row `after` in `table`'s order (ascending or descending); every row when `after` is
 * undefined. The cursor row must be in `scope` (a list never reveals another's rows), else a 400 on `after`
 * saying `missing`.
 */
export async function rowsAfter(db: D1Database, table: Paged, order: "asc" | "desc", after: string | undefined, scope: Where, missing = `'${after}' is not in this list.`): Promise<Where> {
  if (after === undefined) return EVERY;
  const { sort, id } = ORDER[table];
  const at = await db.prepare(`SELECT ${sort} FROM ${table} WHERE ${id} = ? AND ${scope.sql}`).bind(after, ...scope.binds).first<number>(sort);
  if (at === null) throw errors.invalidParam("after", missing);
  const past = order === "asc" ? ">" : "<";
  return { sql: `(${sort} ${past} ? OR (${sort} = ? AND ${id} ${past} ?))`, binds: [at, at, after] };
}

/**
 * One page of `table`'s rows in `scope` matching `filter`, in (created_at, id) order, ascending or newest first,
 * starting after the row `q.after`. Keyset pagination: a page costs the same however deep it is, and rows added
 * meanwhile neither repeat nor vanish. The cursor row must be in `scope` but need not match `filter` any more (a
 * delivery listed as pending may have been delivered since). Returns `q.limit + 1` rows at most (see `toPage`).
 */
export async function pageRows<R>(db: D1Database, table: Exclude<Paged, "usage_events">, scope: Where, filter: Where, q: PageQuery, order: "asc" | "desc"): Promise<R[]> {
  const { sort, id } = ORDER[table];
  const dir = order === "asc" ? "ASC" : "DESC";
  const cursor = await rowsAfter(db, table, order, q.after, scope);
  const { results } = await db
    .prepare(`SELECT * FROM ${table} WHERE ${scope.sql} AND ${filter.sql} AND ${cursor.sql} ORDER BY ${sort} ${dir}, ${id} ${dir} LIMIT ?`)
    .bind(...scope.binds, ...filter.binds, ...cursor.binds, q.limit + 1)
    .all<R>();
  return results;
}
