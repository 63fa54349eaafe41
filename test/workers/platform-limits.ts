/**
 * Production limits the local simulators do not (all) enforce, as wrappers of bindings, for tests that drive
 * code whose statements or batches grow with its input.
 */

const D1_MAX_BOUND_PARAMETERS = 100;
const D1_MAX_STATEMENT_BYTES = 100_000;
const D1_MAX_FUNCTION_ARGUMENTS = 32;

const delegate = <T extends object>(target: T, prop: string | symbol) => {
  const v = Reflect.get(target, prop, target) as unknown;
  return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
};

/** The most arguments any `json_…(…)` call in `sql` takes (commas at its own depth, outside string literals). */
export function maxJsonFunctionArguments(sql: string): number {
  let most = 0;
  for (const m of sql.matchAll(/\bjson_\w+\s*\(/gi)) {
    let depth = 0;
    let args = 1;
    let quote: string | null = null;
    for (let i = m.index + m[0].length - 1; i < sql.length; i++) {
      const ch = sql[i]!;
      if (quote) {
        if (ch === quote) quote = null;
      } else if (ch === "'" || ch === '"') quote = ch;
      else if (ch === "(") depth++;
      else if (ch === ")" && --depth === 0) break;
      else if (ch === "," && depth === 1) args++;
    }
    most = Math.max(most, args);
  }
  return most;
}

/**
 * `db` with D1's per-statement limits as production enforces them (the local simulator is plain SQLite, which
 * takes 32,766 bound parameters and 127 function arguments): at most 100 bound parameters, 100 KB of SQL and 32
 * arguments to a (JSON) function.
 */
export function withD1Limits(db: D1Database): D1Database {
  return new Proxy(db, {
    get(target, prop) {
      if (prop !== "prepare") return delegate(target, prop);
      return (sql: string) => {
        if (new TextEncoder().encode(sql).length > D1_MAX_STATEMENT_BYTES) throw new Error(`D1_ERROR: statement too long`);
        const fnArgs = maxJsonFunctionArguments(sql);
        if (fnArgs > D1_MAX_FUNCTION_ARGUMENTS) throw new Error(`D1_ERROR: a function call with ${fnArgs} arguments; D1 allows ${D1_MAX_FUNCTION_ARGUMENTS}`);
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

const QUEUE_MAX_BATCH_MESSAGES = 100;

/** `queue` refusing a sendBatch of more than 100 messages, as Cloudflare Queues does. */
export function withQueueLimits<T>(queue: Queue<T>): Queue<T> {
  return new Proxy(queue, {
    get(target, prop) {
      if (prop !== "sendBatch") return delegate(target, prop);
      return (messages: Iterable<MessageSendRequest<T>>, options?: QueueSendBatchOptions) => {
        const all = [...messages];
        if (all.length > QUEUE_MAX_BATCH_MESSAGES) return Promise.reject(new Error(`sendBatch of ${all.length} messages: Queues takes at most ${QUEUE_MAX_BATCH_MESSAGES}`));
        return target.sendBatch(all, options);
      };
    },
  });
}
