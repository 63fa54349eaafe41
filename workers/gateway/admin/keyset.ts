import type { PageQuery } from "../../../src/admin/pagination.js";
import { errors } from "../../../src/openai/errors.js";

/** Tables the admin API lists, each ordered by (created_at, id). */
type Listed = "tenants" | "api_keys" | "webhook_deliveries";

/**
 * One page of `table`'s rows matching `where` (SQL over the table's columns, bound to `binds`), in (created_at,
 * id) order, ascending or newest first, starting after the row `q.after` (which must match `where` too). Keyset
 * pagination: a page costs the same however deep it is, and rows added meanwhile neither repeat nor vanish.
 * Returns `q.limit + 1` rows at most (see `toPage`).
 */
export async function pageRows<R>(db: D1Database, table: Listed, where: string, binds: unknown[], q: PageQuery, order: "asc" | "desc"): Promise<R[]> {
  const dir = order === "asc" ? "ASC" : "DESC";
  const past = order === "asc" ? ">" : "<";
  let cursor = "";
  const cursorBinds: unknown[] = [];
  if (q.after !== undefined) {
    const at = await db.prepare(`SELECT created_at FROM ${table} WHERE id = ? AND ${where}`).bind(q.after, ...binds).first<number>("created_at");
    if (at === null) throw errors.invalidParam("after", `'${q.after}' is not in this list.`);
    cursor = `AND (created_at ${past} ? OR (created_at = ? AND id ${past} ?))`;
    cursorBinds.push(at, at, q.after);
  }
  const { results } = await db
    .prepare(`SELECT * FROM ${table} WHERE ${where} ${cursor} ORDER BY created_at ${dir}, id ${dir} LIMIT ?`)
    .bind(...binds, ...cursorBinds, q.limit + 1)
    .all<R>();
  return results;
}
