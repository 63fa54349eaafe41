/**
 * Production limits the local simulators do not (all) enforce, as wrappers of bindings, for tests that drive
 * code whose statements or batches grow with its input.
 */

/**
 * `db` with D1's per-statement limits as production enforces them (the local simulator is plain SQLite, which
 * takes 32,766 bound parameters): at most 100 bound parameters and 100 KB of SQL.
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
