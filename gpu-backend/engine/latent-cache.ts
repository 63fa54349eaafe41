/**
 * Where a sequence's compressed attention memory lives: per layer, one row of `kv_lora_rank + qk_rope_head_dim`
 * floats per position. The engine reads a prefix of rows and appends new ones; the pod's paged block manager
 * and the simple contiguous store below both implement it.
 */
export interface LatentCache {
  /** Copies rows [0, count) of `layer` into `out` starting at `offset` (row-major). */
  read(layer: number, count: number, out: Float32Array, offset: number): void;
  /** Stores `row` (exactly one row) as position `pos` of `layer`. */
  write(layer: number, pos: number, row: Float32Array): void;
  /** Set when the rows live in blocks of a pool shared with other sequences: attention then gathers them itself. */
  readonly paged?: PagedRows;
}

/**
 * A sequence's rows as blocks of a shared pool: block `k` of layer `l` is rows `[k·blockSize, (k+1)·blockSize)`
 * of `pools[l]` (`[blocks, blockSize, width]`). Rows past a sequence's length in its last block are zeros or
 * its own earlier rows, never another sequence's (blocks are cleared when handed out).
 */
export interface PagedRows {
  /** One array per layer, the same arrays for every sequence of the pool. */
  readonly pools: readonly Float32Array[];
  readonly blockSize: number;
  /** The sequence's blocks in position order. */
  readonly blocks: readonly number[];
  /** A block that is always zeros, to pad a shorter sequence's table. */
  readonly zeroBlock: number;
}

/** One growable array per layer: for the eval CLI, tests and single-sequence use. */
export class ContiguousLatentCache implements LatentCache {
  private readonly layers: Float32Array[];
  private capacity: number;

  constructor(layers: number, private readonly width: number, initialRows = 64) {
    this.capacity = initialRows;
    this.layers = Array.from({ length: layers }, () => new Float32Array(initialRows * width));
  }

  read(layer: number, count: number, out: Float32Array, offset: number): void {
    out.set(this.layers[layer]!.subarray(0, count * this.width), offset);
  }

  write(layer: number, pos: number, row: Float32Array): void {
    if (pos >= this.capacity) this.grow(pos + 1);
    this.layers[layer]!.set(row, pos * this.width);
  }

  private grow(rows: number): void {
    const next = Math.max(rows, this.capacity * 2);
    for (let l = 0; l < this.layers.length; l++) {
      const bigger = new Float32Array(next * this.width);
      bigger.set(this.layers[l]!);
      this.layers[l] = bigger;
    }
    this.capacity = next;
  }
}
