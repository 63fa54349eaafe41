/** float8_e4m3fn (DeepSeek-V3's weight format): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities. */
const E4M3 = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const sign = b & 0x80 ? -1 : 1;
    const exp = (b >> 3) & 0xf;
    const man = b & 0x7;
    if (exp === 0xf && man === 0x7) t[b] = NaN;
    else if (exp === 0) t[b] = sign * (man / 8) * 2 ** -6;
    else t[b] = sign * (1 + man / 8) * 2 ** (exp - 7);
  }
  return t;
})();

export const decodeE4M3 = (byte: number): number => E4M3[byte & 0xff]!;

/**
 * Dequantises a block-scaled FP8 weight `[rows, cols]`: each `block[0]×block[1]` tile is multiplied by its entry
 * of `scaleInv` (`[ceil(rows/b0), ceil(cols/b1)]`). Edge tiles may be partial.
 */
export function dequantFp8Blocks(
  q: Uint8Array,
  rows: number,
  cols: number,
  scaleInv: Float32Array,
  block: [number, number],
): Float32Array {
  const [b0, b1] = block;
  const sRows = Math.ceil(rows / b0);
  const sCols = Math.ceil(cols / b1);
  if (q.length !== rows * cols) throw new Error(`fp8 weight has ${q.length} bytes, expected ${rows}×${cols}`);
  if (scaleInv.length !== sRows * sCols) {
    throw new Error(`weight_scale_inv has ${scaleInv.length} values, expected ${sRows}×${sCols} for ${rows}×${cols} in ${b0}×${b1} blocks`);
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const srow = Math.floor(r / b0) * sCols;
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[base + c] = E4M3[q[base + c]!]! * scaleInv[srow + Math.floor(c / b1)]!;
  }
  return out;
}
