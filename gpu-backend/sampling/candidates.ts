import { topKIndices } from "../engine/top-k.js";

/**
 * The candidate sets of top-k and top-p sampling, without sorting a whole row. Tokens are binned in value bands
 * (a band's every value is above every value of the bands after it), the bands are counted or summed, and only
 * the band where the count or mass crosses the limit is sorted.
 */

/** Value bands below the most probable token: 8 a factor of two, over 32 factors; everything smaller shares the last. */
const BANDS = 256;

let keyScratch = new Int32Array(0);

/**
 * Each probability's band key (its float bits from the exponent down to the top three mantissa bits: for
 * non-negative floats the bits grow with the value), the row's total, and the key of its largest value.
 */
function bandKeys(probs: Float32Array | Float64Array): { keys: Int32Array; topKey: number; total: number } {
  const n = probs.length;
  let total = 0;
  let max = -1;
  let top = 0;
  for (let i = 0; i < n; i++) {
    const q = probs[i]!;
    total += q;
    if (q > max) {
      max = q;
      top = i;
    }
  }
  if (keyScratch.length < n) keyScratch = new Int32Array(n);
  const keys = keyScratch;
  if (probs instanceof Float32Array) {
    const bits = new Uint32Array(probs.buffer, probs.byteOffset, n);
    for (let i = 0; i < n; i++) keys[i] = bits[i]! >>> 20;
  } else {
    // The high word of a little-endian double: sign, 11 exponent bits, the top of the mantissa.
    const words = new Uint32Array(probs.buffer, probs.byteOffset, 2 * n);
    for (let i = 0; i < n; i++) keys[i] = words[2 * i + 1]! >>> 17;
  }
  return { keys, topKey: keys[top]!, total };
}

/**
 * Per band, its tokens' count (`count`) or probability mass. Band b holds the keys topKey − b, the last band
 * also every lower one. Summed branch-free, in four interleaved copies (whether a value falls in the last band
 * is a coin toss on a peaked row, and consecutive adds to one slot would wait on each other through memory).
 */
function bandTotals(probs: Float32Array | Float64Array, keys: Int32Array, topKey: number, count: boolean): Float64Array {
  const lanes = new Float64Array(4 * BANDS);
  for (let i = 0; i < probs.length; i++) {
    let b = topKey - keys[i]!;
    b &= ~(b >> 31); // max(b, 0)
    const room = BANDS - 1 - b;
    b = BANDS - 1 - (room & ~(room >> 31)); // min(b, BANDS − 1)
    lanes[(i & 3) * BANDS + b]! += count ? 1 : probs[i]!;
  }
  const totals = new Float64Array(BANDS);
  for (let b = 0; b < BANDS; b++) totals[b] = lanes[b]! + lanes[BANDS + b]! + lanes[2 * BANDS + b]! + lanes[3 * BANDS + b]!;
  return totals;
}

/**
 * The band where the running total of `totals` first reaches `limit` (the last band if none does), and the
 * total of the bands before it. Then the tokens of those bands, in index order, and the crossing band's own,
 * most probable first (ties: lower index first).
 */
function split(probs: Float32Array | Float64Array, keys: Int32Array, topKey: number, totals: Float64Array, limit: number) {
  let crossing = 0;
  let before = 0;
  while (crossing < BANDS - 1 && before + totals[crossing]! < limit) before += totals[crossing++]!;
  const cut = topKey - crossing;
  const from = crossing === BANDS - 1 ? -Infinity : cut;
  const above: number[] = [];
  const edge: number[] = [];
  for (let i = 0; i < probs.length; i++) {
    const k = keys[i]!;
    if (k > cut) above.push(i);
    else if (k >= from) edge.push(i);
  }
  edge.sort(byProbability(probs));
  return { before, above, edge };
}

const byProbability = (probs: ArrayLike<number>) => (a: number, b: number) => probs[b]! - probs[a]! || a - b;

/**
 * The `k` most probable tokens (ties: lower index first): most probable first, as `topKIndices` gives them, when
 * `sorted`; else the same set in a fixed order (the bands above the crossing one in index order, then the
 * crossing band's chosen ones). Past a few dozen, `topKIndices`' sorted window costs O(n·k) (top_k = 10,000 of
 * 16k tokens: 161 ms a row); bands keep a large k to a few passes (~1 ms there; 5 ms sorted).
 */
export function topKCandidates(probs: Float32Array | Float64Array, k: number, sorted: boolean): number[] {
  if (k <= 32) return topKIndices(probs, k);
  const n = probs.length;
  if (k >= n) return sorted ? Array.from({ length: n }, (_, i) => i).sort(byProbability(probs)) : Array.from({ length: n }, (_, i) => i);
  const { keys, topKey } = bandKeys(probs);
  const { before, above, edge } = split(probs, keys, topKey, bandTotals(probs, keys, topKey, true), k);
  if (sorted) above.sort(byProbability(probs));
  for (let j = 0; j < k - before; j++) above.push(edge[j]!);
  return above;
}

/**
 * Top-p (OpenAI's `top_p`): the smallest set of tokens, most probable first (ties: lower index first), whose
 * mass reaches `p` of the total of `probs` (unnormalised, non-negative) or of the `within` candidates (sorted
 * most probable first). A top_p = 0.9 draw from a flat 16k-token row took 5.8 ms when every candidate was
 * sorted, and takes 0.4–0.5 ms; from a peaked one, 0.18 → 0.14 ms. The set comes back in a fixed order: the
 * bands above the crossing one in index order, then the crossing band's members most probable first.
 */
export function nucleus(probs: Float32Array | Float64Array, p: number, within: readonly number[] | null): number[] {
  if (within) {
    let total = 0;
    for (const i of within) total += probs[i]!;
    let acc = 0;
    for (let k = 0; k < within.length; k++) if ((acc += probs[within[k]!]!) >= p * total) return within.slice(0, k + 1);
    return [...within];
  }
  const { keys, topKey, total } = bandKeys(probs);
  const target = p * total;
  const { before, above, edge } = split(probs, keys, topKey, bandTotals(probs, keys, topKey, false), target);
  let acc = before;
  for (const i of edge) {
    above.push(i);
    if ((acc += probs[i]!) >= target) break;
  }
  return above;
}
