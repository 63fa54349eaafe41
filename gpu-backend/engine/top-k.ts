/**
 * Indices of the k largest values, descending; ties → lower index first (as torch.topk does on CPU).
 * One pass with a small sorted window: O(n·k) for the small k of routing and sampling, no sort of all n.
 */
export function topKIndices(values: ArrayLike<number>, k: number, exclude?: (i: number) => boolean): number[] {
  const best: number[] = [];
  if (k <= 0) return best;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (best.length === k && !(v > values[best[k - 1]!]!)) continue;
    if (exclude?.(i)) continue;
    let j = best.length < k ? best.length : k - 1;
    if (best.length < k) best.push(i);
    // Later indices lose ties, so an equal value stays in front.
    while (j > 0 && values[best[j - 1]!]! < v) {
      best[j] = best[j - 1]!;
      j--;
    }
    best[j] = i;
  }
  return best;
}
