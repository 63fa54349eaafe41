import type { LatentCache } from "../engine/latent-cache.js";

/**
 * The latent rows of every block, one array per layer: `[numBlocks, blockSize, width]`. Memory is fixed at
 * start-up; sequences own block tables into it.
 */
export class LatentStore {
  readonly layers: Float32Array[];

  constructor(layers: number, readonly numBlocks: number, readonly blockSize: number, readonly width: number) {
    this.layers = Array.from({ length: layers }, () => new Float32Array(numBlocks * blockSize * width));
  }

  get bytes(): number {
    return this.layers.length * this.numBlocks * this.blockSize * this.width * 4;
  }
}

/** A sequence's view of the store through its block table: what the model reads and appends to. */
export class PagedLatentCache implements LatentCache {
  constructor(private readonly store: LatentStore, readonly blocks: number[]) {}

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
