import { z } from "zod";

/**
 * The admin API's lists come in pages: `?limit=` items (default 100) in a fixed order, and `?after=<id>` the
 * last id of the previous page. Objects as OpenAI's lists: `{object: "list", data, first_id, last_id, has_more}`.
 */
export const PageQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  after: z.string().min(1).max(200).optional(),
});
export type PageQuery = z.infer<typeof PageQuerySchema>;

export interface Page<T> {
  object: "list";
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

/** A page from `rows` fetched with one row more than `limit` (that row only says more follow). */
export function toPage<T extends { id: string }>(rows: T[], limit: number): Page<T> {
  const data = rows.slice(0, limit);
  return { object: "list", data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: rows.length > limit };
}
