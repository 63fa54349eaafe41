/** Prefixed random identifiers (`req_…`, `ten_…`, `key_…`, `chatcmpl-…`). */
export function newId(prefix: string, bytes = 12): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return `${prefix}${s}`;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);
