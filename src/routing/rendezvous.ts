/**
 * Weighted rendezvous (highest-random-weight) hashing: every (key, node) pair gets a score; a key goes to the
 * node with the highest score. Adding or removing a node moves only the keys that node wins or loses, so
 * requests sharing a prefix keep landing on the pod that has it cached.
 */

/** 53-bit string hash (cyrb53): fast, well mixed, synchronous — no crypto needed for placement. */
export function hash53(s: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** Score of `node` for a key (given as its hash), proportional in expectation to `weight` (capacity). */
export function rendezvousScore(keyHash: number, node: string, weight = 1): number {
  const u = (hash53(node, keyHash % 4294967296) + 0.5) / 2 ** 53; // uniform in (0, 1)
  return -weight / Math.log(u);
}

/** Nodes ordered by descending score for a key (pass `hash53(key)`: long keys are hashed once per request). */
export function rendezvousOrder<T extends { id: string; weight?: number }>(keyHash: number, nodes: T[]): T[] {
  return nodes
    .map((n) => ({ n, s: rendezvousScore(keyHash, n.id, n.weight ?? 1) }))
    .sort((a, b) => b.s - a.s || (a.n.id < b.n.id ? -1 : 1))
    .map((x) => x.n);
}
