import type { PagedRows } from "./latent-cache.js";

/** What grouping needs of a sequence in a step: how much of it is cached, and where (paged pools only). */
interface CachedSequence {
  past: number;
  cache: { readonly paged?: PagedRows };
}

/**
 * Cached rows a family of sequences must spare (shared rows × members beyond the first) to get its own attention
 * run. On the bench model a decode run costs ~0.5 ms a layer whatever its size, and each sequence attending a
 * cached row it shares ~0.25 µs a layer (gather and 8-row GEMMs).
 */
export const FAMILY_MIN_SPARED_ROWS = 2048;

/** How many leading blocks every sequence of `group` (all in one paged pool) has, wholly within its past. */
export function sharedBlocks(group: readonly CachedSequence[], blockSize: number): number {
  const first = group[0]!.cache.paged!.blocks;
  const whole = Math.min(...group.map((s) => Math.floor(s.past / blockSize)));
  let n = 0;
  while (n < whole && group.every((s) => s.cache.paged!.blocks[n] === first[n])) n++;
  return n;
}

/**
 * Splits an attention group (indices into `seqs`, all in one paged pool) into families whose sequences start
 * with the same cached blocks (one system prompt), so each family attends its prefix once; the other sequences
 * stay together, last. A family is split off only when the rows it spares repay its own run.
 */
export function prefixFamilies(group: readonly number[], seqs: readonly CachedSequence[], blockSize: number): number[][] {
  const byFirst = new Map<number, number[]>();
  const rest: number[] = [];
  for (const i of group) {
    const s = seqs[i]!;
    const key = s.cache.paged!.blocks[0]!;
    const family = s.past < blockSize ? rest : byFirst.get(key);
    if (family) family.push(i);
    else byFirst.set(key, [i]);
  }
  const families: number[][] = [];
  for (const family of byFirst.values()) {
    const spared = sharedBlocks(family.map((i) => seqs[i]!), blockSize) * blockSize * (family.length - 1);
    if (family.length > 1 && spared >= FAMILY_MIN_SPARED_ROWS) families.push(family);
    else rest.push(...family);
  }
  if (families.length === 0) return [[...group]];
  return rest.length > 0 ? [...families, rest.sort((a, b) => a - b)] : families;
}
