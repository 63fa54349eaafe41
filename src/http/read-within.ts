/**
 * The next read of `reader`, or a rejection once `ms` pass without one. Our pods send something every few
 * seconds while they work (a space before a JSON answer, a comment in a stream), so silence means stuck. On
 * timeout the reader is cancelled.
 */
export async function readWithin<T>(reader: ReadableStreamDefaultReader<T>, ms: number | undefined): Promise<ReadableStreamReadResult<T>> {
  if (ms === undefined) return reader.read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const silent = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the upstream sent nothing for ${ms} ms`)), ms)));
  try {
    return await Promise.race([reader.read(), silent]);
  } catch (e) {
    reader.cancel(e).catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
