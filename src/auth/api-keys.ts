/**
 * API key material. Keys are shown to their owner once; we keep only SHA-256 hashes.
 * Uses only Web Crypto, which Node and workerd both provide.
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
export const KEY_PREFIX = "sk-";
const KEY_BODY_LENGTH = 48; // 48 base62 chars ≈ 285 bits

/** A fresh key, `sk-` + 48 base62 characters drawn by rejection sampling (no modulo bias). */
export function generateApiKey(): string {
  let out = KEY_PREFIX;
  const buf = new Uint8Array(64);
  while (out.length < KEY_PREFIX.length + KEY_BODY_LENGTH) {
    crypto.getRandomValues(buf);
    for (const b of buf) {
      if (b < 248 && out.length < KEY_PREFIX.length + KEY_BODY_LENGTH) out += ALPHABET[b % 62];
    }
  }
  return out;
}

/** Keys we accept at all: printable ASCII without spaces, of a sane length. Cheap to check before hashing. */
export function isWellFormedKey(key: string): boolean {
  return key.length >= 20 && key.length <= 256 && /^[\x21-\x7e]+$/.test(key);
}

export async function hashApiKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return toHex(new Uint8Array(digest));
}

/** What may be shown or logged about a key: `sk-...abcd`. */
export function displayPrefix(key: string): string {
  const head = key.startsWith(KEY_PREFIX) ? KEY_PREFIX : "";
  return `${head}...${key.slice(-4)}`;
}

/** Compares two strings in time independent of where they differ (length is not secret here: hashes/tokens). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  let diff = ea.length ^ eb.length;
  const n = Math.max(ea.length, eb.length);
  for (let i = 0; i < n; i++) diff |= (ea[i] ?? 0) ^ (eb[i] ?? 0);
  return diff === 0;
}

/** `Authorization: Bearer <token>` → token; anything else → null. */
export function bearerToken(header: string | null | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}
