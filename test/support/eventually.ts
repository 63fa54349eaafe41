/**
 * Polls `f` until `ok` holds or `ms` pass, returning the last value: for waiting on something the system
 * promises within a bound (a queue consumer, a health probe), never as a fixed sleep.
 */
export async function eventually<T>(ms: number, f: () => Promise<T>, ok: (t: T) => boolean, everyMs = 50): Promise<T> {
  const deadline = Date.now() + ms;
  let v = await f();
  while (!ok(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, everyMs));
    v = await f();
  }
  return v;
}
