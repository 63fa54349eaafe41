import type { PageQuery } from "../../../src/admin/pagination.js";
import { errors } from "../../../src/openai/errors.js";

/** Tables the admin API lists, each ordered by (created_at, id). */
type Listed = "tenants" | "api_keys" | "webhook_deliveries";

/** SQL over the table's columns and the values it binds. */
export interface Where {
  sql: string;
  binds: unknown[];
}

export const EVERY: Where = { sql: "1 = 1", binds: [] };

/**
 * One page of `table`'s rows in `scope` matching `filter`, in (created_at, id) order, ascending or newest first,
 * starting after the row `q.after`. Keyset pagination: a page costs the same however deep it is, and rows added
 * meanwhile neither repeat nor vanish. The cursor row must be in `scope` (a list never reveals another's rows)
 * but need not match `filter` any more (a delivery listed as pending may have been delivered since).
 * Returns `q.limit + 1` rows at most (see `toPage`).
 */
export async function pageRows<R>(db: D1Database, table: Listed, scope: Where, filter: Where, q: PageQuery, order: "asc" | "desc"): Promise<R[]> {
  const dir = order === "asc" ? "ASC" : "DESC";
  const past = order === "asc" ? ">" : "<";
  let cursor = "";
  const cursorBinds: unknown[] = [];
  if (q.after !== undefined) {
    const at = await db.prepare(`SELECT created_at FROM ${table} WHERE id = ? AND ${scope.sql}`).bind(q.after, ...scope.binds).first<number>("created_at");
    if (at === null) throw errors.invalidParam("after", `'${q.after}' is not in this list.`);
    cursor = `AND (created_at ${past} ? OR (created_at = ? AND id ${past} ?))`;
    cursorBinds.push(at, at, q.after);
  }
  const { results } = await db
    .prepare(`SELECT * FROM ${table} WHERE ${scope.sql} AND ${filter.sql} ${cursor} ORDER BY created_at ${dir}, id ${dir} LIMIT ?`)
    .bind(...scope.binds, ...filter.binds, ...cursorBinds, q.limit + 1)
    .all<R>();
  return results;
}
