import type { LatentCache, PagedRows } from "../engine/latent-cache.js";

/**
 * The latent rows of every block, one array per layer: `[numBlocks + 1, blockSize, width]`, the extra block
 * always zeros (padding for attention's block tables). Memory is fixed at start-up; sequences own block
 * tables into it.
 */
export class LatentStore {
  readonly layers: Float32Array[];
  readonly zeroBlock: number;

  constructor(layers: number, readonly numBlocks: number, readonly blockSize: number, readonly width: number) {
    this.zeroBlock = numBlocks;
    this.layers = Array.from({ length: layers }, () => new Float32Array((numBlocks + 1) * blockSize * width));
  }

  get bytes(): number {
    return this.layers.length * this.numBlocks * this.blockSize * this.width * 4;
  }

  /**
   * Zeros a block's rows in every layer, for a sequence taking it over: attention reads whole blocks (masking
   * rows past each sequence's length), and a previous owner's rows must never reach it, not even as a NaN.
   */
  clear(block: number): void {
    const n = this.blockSize * this.width;
    for (const rows of this.layers) rows.fill(0, block * n, (block + 1) * n);
  }
}

/** A sequence's view of the store through its block table: what the model reads and appends to. */
export class PagedLatentCache implements LatentCache {
  readonly paged: PagedRows;

  constructor(private readonly store: LatentStore, readonly blocks: number[]) {
    this.paged = { pools: store.layers, blockSize: store.blockSize, blocks, zeroBlock: store.zeroBlock };
  }

  read(layer: number, count: number, out: Float32Array, offset: number): void {
    const { blockSize: bs, width: w } = this.store;
    const src = this.store.layers[layer]!;
    let pos = 0;
    for (let i = 0; pos < count; i++) {
      const n = Math.min(bs, count - pos);
      const start = this.blocks[i]! * bs * w;
      out.set(src.subarray(start, start + n * w), offset + pos * w);
      pos += n;
    }
  }

  write(layer: number, pos: number, row: Float32Array): void {
    const { blockSize: bs, width: w } = this.store;
    const block = this.blocks[Math.floor(pos / bs)];
    if (block === undefined) throw new Error(`position ${pos} has no block (table holds ${this.blocks.length})`);
    this.store.layers[layer]!.set(row, (block * bs + (pos % bs)) * w);
  }
}
