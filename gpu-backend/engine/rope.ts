import type { ModelConfig } from "./config.js";

/** YaRN's attention-magnitude correction: 0.1·m·ln(f) + 1 for f > 1. */
export function yarnMscale(factor: number, mscale = 1): number {
  return factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1;
}

/** The dimension index at which a rotation completes `rotations` turns over the original context. */
function correctionDim(rotations: number, dim: number, base: number, maxPos: number): number {
  return (dim * Math.log(maxPos / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
}

/** RoPE inverse frequencies for the rope part (`qk_rope_head_dim`), YaRN-blended when configured. */
export function ropeInvFreq(c: ModelConfig): Float64Array {
  const d = c.ropeDim;
  const half = d / 2;
  const base = new Float64Array(half);
  for (let i = 0; i < half; i++) base[i] = Math.pow(c.ropeTheta, -(2 * i) / d);
  if (!c.yarn) return base;
  const { factor, original_max_position_embeddings: orig, beta_fast, beta_slow } = c.yarn;
  const low = Math.max(Math.floor(correctionDim(beta_fast, d, c.ropeTheta, orig)), 0);
  const high = Math.min(Math.ceil(correctionDim(beta_slow, d, c.ropeTheta, orig)), d - 1);
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const span = high === low ? 0.001 : high - low; // HF guards the degenerate ramp the same way
    const ramp = Math.min(Math.max((i - low) / span, 0), 1);
    // ramp = 1 past `high` (slow dims): interpolate by the factor; ramp = 0 below `low`: keep extrapolating.
    out[i] = (base[i]! / factor) * ramp + base[i]! * (1 - ramp);
  }
  return out;
}

/** Scale applied to cos/sin: mscale(f, mscale) / mscale(f, mscale_all_dim) (1 for every public config). */
export function ropeCosSinFactor(c: ModelConfig): number {
  if (!c.yarn) return 1;
  return yarnMscale(c.yarn.factor, c.yarn.mscale) / yarnMscale(c.yarn.factor, c.yarn.mscale_all_dim);
}

/** Attention softmax scale: (nope + rope)^-1/2, times mscale(f, mscale_all_dim)² under YaRN. */
export function softmaxScale(c: ModelConfig): number {
  const s = 1 / Math.sqrt(c.nopeDim + c.ropeDim);
  if (!c.yarn || !c.yarn.mscale_all_dim) return s;
  const m = yarnMscale(c.yarn.factor, c.yarn.mscale_all_dim);
  return s * m * m;
}

/** cos/sin for each position, `[positions.length, rope/2]`, ready to feed the rotation in the graphs. */
export class RopeTable {
  private readonly invFreq: Float64Array;
  private readonly factor: number;

  constructor(c: ModelConfig) {
    this.invFreq = ropeInvFreq(c);
    this.factor = ropeCosSinFactor(c);
  }

  fill(positions: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
    const half = this.invFreq.length;
    const cos = new Float32Array(positions.length * half);
    const sin = new Float32Array(positions.length * half);
    for (let t = 0; t < positions.length; t++) {
      for (let i = 0; i < half; i++) {
        const a = positions[t]! * this.invFreq[i]!;
        cos[t * half + i] = Math.cos(a) * this.factor;
        sin[t * half + i] = Math.sin(a) * this.factor;
      }
    }
    return { cos, sin };
  }
}
