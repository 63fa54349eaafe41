import { createHash } from "node:crypto";

/**
 * Paged KV blocks with a prefix cache. A block holds `blockSize` consecutive positions of one sequence's
 * latent rows (every layer). Full blocks are content-addressed by a chained hash seeded with the tenant, so
 * two requests from the same tenant sharing a prompt prefix share blocks, and two tenants never do.
 *
 * A block is in exactly one state: in use (refcount > 0), cached (refcount 0, hash known, evictable in LRU
 * order) or free (refcount 0, no hash).
 */
export class BlockPool {
  private readonly refcount: Int32Array;
  private readonly hashOf: (string | null)[];
  private readonly byHash = new Map<string, number>();
  /** Cached blocks with refcount 0, least recently used first (Map keeps insertion order). */
  private readonly evictable = new Map<number, true>();
  private readonly free: number[] = [];

  constructor(readonly numBlocks: number, readonly blockSize: number) {
    this.refcount = new Int32Array(numBlocks);
    this.hashOf = new Array(numBlocks).fill(null);
    for (let b = numBlocks - 1; b >= 0; b--) this.free.push(b);
  }

  /** Blocks that can be handed out now: free ones plus cached ones nobody uses. */
  get available(): number {
    return this.free.length + this.evictable.size;
  }

  get used(): number {
    return this.numBlocks - this.available;
  }

  get cachedBlocks(): number {
    return this.byHash.size;
  }

  /** A fresh block for exclusive use, evicting the least recently used cached block if none is free. */
  allocate(): number | null {
    let b = this.free.pop();
    if (b === undefined) {
      const lru = this.evictable.keys().next();
      if (lru.done) return null;
      b = lru.value;
      this.evictable.delete(b);
      this.byHash.delete(this.hashOf[b]!);
      this.hashOf[b] = null;
    }
    this.refcount[b] = 1;
    return b;
  }

  /** Takes a reference on the cached block with this hash, if there is one. */
  lookup(hash: string): number | null {
    const b = this.byHash.get(hash);
    if (b === undefined) return null;
    if (this.refcount[b] === 0) this.evictable.delete(b);
    this.refcount[b]! += 1;
    return b;
  }

  /** Publishes a full block under its content hash (first writer wins; a duplicate stays private). */
  register(block: number, hash: string): void {
    if (this.hashOf[block] !== null || this.byHash.has(hash)) return;
    this.hashOf[block] = hash;
    this.byHash.set(hash, block);
  }

  release(block: number): void {
    if (this.refcount[block]! <= 0) throw new Error(`block ${block} released more often than taken`);
    this.refcount[block]! -= 1;
    if (this.refcount[block] === 0) {
      if (this.hashOf[block] !== null) this.evictable.set(block, true);
      else this.free.push(block);
    }
  }
}

/** The salt that scopes a prefix-cache chain: tenant and model, so nothing is shared across either. */
export function chainSeed(tenant: string, model: string): string {
  return createHash("sha256").update(`tenant\u0000${tenant}\u0000model\u0000${model}`).digest("hex");
}

/** Hash of one full block given its predecessor's: commits to every token before it, and to the tenant. */
export function blockHash(prev: string, tokens: ArrayLike<number>): string {
  const h = createHash("sha256").update(prev);
  h.update(new Uint8Array(Int32Array.from(tokens as ArrayLike<number>).buffer));
  return h.digest("hex");
}
