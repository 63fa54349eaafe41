/**
 * `db` with D1's per-statement limits as production enforces them (the local simulator is plain SQLite, which
 * takes 32,766 bound parameters): at most 100 bound parameters and 100 KB of SQL. Wrap `env.DB` with it where
 * a test drives code whose statements grow with its input.
 */
export const D1_MAX_BOUND_PARAMETERS = 100;
const D1_MAX_STATEMENT_BYTES = 100_000;

const delegate = <T extends object>(target: T, prop: string | symbol) => {
  const v = Reflect.get(target, prop, target) as unknown;
  return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
};

export function withD1Limits(db: D1Database): D1Database {
  return new Proxy(db, {
    get(target, prop) {
      if (prop !== "prepare") return delegate(target, prop);
      return (sql: string) => {
        if (new TextEncoder().encode(sql).length > D1_MAX_STATEMENT_BYTES) throw new Error(`D1_ERROR: statement too long`);
        const stmt = target.prepare(sql);
        return new Proxy(stmt, {
          get(s, p) {
            if (p !== "bind") return delegate(s, p);
            return (...args: unknown[]) => {
              if (args.length > D1_MAX_BOUND_PARAMETERS) throw new Error(`D1_ERROR: too many SQL variables: ${args.length} bound, D1 allows ${D1_MAX_BOUND_PARAMETERS}`);
              return s.bind(...args);
            };
          },
        });
      };
    },
  });
}
