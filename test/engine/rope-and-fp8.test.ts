import { describe, expect, it } from "vitest";
import { parseModelConfig } from "../../gpu-backend/engine/config.js";
import { decodeE4M3, dequantFp8Blocks } from "../../gpu-backend/engine/fp8.js";
import { ropeCosSinFactor, ropeInvFreq, softmaxScale, yarnMscale } from "../../gpu-backend/engine/rope.js";
import { TINY_V3_CONFIG } from "../../gpu-backend/tools/tiny-config.js";

/** DeepSeek-V3's published attention geometry and YaRN settings. */
const V3_ROPE = {
  ...TINY_V3_CONFIG,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  rope_scaling: { type: "yarn", factor: 40, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
};

describe("RoPE / YaRN", () => {
  it("plain RoPE: inv_freq = theta^(-2i/d) (the golden file's values)", () => {
    const c = parseModelConfig({ ...TINY_V3_CONFIG, qk_rope_head_dim: 8, rope_scaling: null });
    expect([...ropeInvFreq(c)].map((x) => +x.toPrecision(12))).toEqual([1, 0.1, 0.01, 0.001]);
    expect(softmaxScale(c)).toBeCloseTo(1 / Math.sqrt(40), 12);
  });

  it("YaRN with DeepSeek-V3's settings: extrapolate below dim 10, interpolate ×1/40 from dim 23, ramp between", () => {
    const c = parseModelConfig(V3_ROPE);
    const inv = ropeInvFreq(c);
    const base = (i: number) => Math.pow(10000, -(2 * i) / 64);
    expect(inv[0]).toBeCloseTo(base(0), 12);
    expect(inv[10]).toBeCloseTo(base(10), 12); // low = floor(10.47) = 10: ramp 0
    expect(inv[23]).toBeCloseTo(base(23) / 40, 15); // high = ceil(22.5) = 23: ramp 1
    expect(inv[31]).toBeCloseTo(base(31) / 40, 15);
    const ramp = (16 - 10) / (23 - 10);
    expect(inv[16]).toBeCloseTo((base(16) / 40) * ramp + base(16) * (1 - ramp), 15);
  });

  it("YaRN scales the softmax by mscale(factor, mscale_all_dim)² and leaves cos/sin at 1", () => {
    const c = parseModelConfig(V3_ROPE);
    const m = 0.1 * Math.log(40) + 1;
    expect(yarnMscale(40, 1)).toBeCloseTo(m, 12);
    expect(softmaxScale(c)).toBeCloseTo((1 / Math.sqrt(192)) * m * m, 12);
    expect(ropeCosSinFactor(c)).toBe(1);
  });
});

describe("FP8 E4M3", () => {
  it("decodes the format's landmarks", () => {
    expect(decodeE4M3(0x38)).toBe(1);
    expect(decodeE4M3(0xb8)).toBe(-1);
    expect(decodeE4M3(0x7e)).toBe(448); // largest finite
    expect(decodeE4M3(0x01)).toBe(2 ** -9); // smallest subnormal
    expect(decodeE4M3(0x08)).toBe(2 ** -6); // smallest normal
    expect(decodeE4M3(0x00)).toBe(0);
    expect(Number.isNaN(decodeE4M3(0x7f))).toBe(true);
  });

  it("dequantises 128×128 blocks, including partial edge blocks", () => {
    const rows = 130;
    const cols = 260; // blocks: 2 × 3, the last row/column of blocks partial
    const q = new Uint8Array(rows * cols).fill(0x38); // every value 1.0 before scaling
    const scale = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const w = dequantFp8Blocks(q, rows, cols, scale, [128, 128]);
    const at = (r: number, c: number) => w[r * cols + c];
    expect(at(0, 0)).toBe(1);
    expect(at(127, 127)).toBe(1);
    expect(at(0, 128)).toBe(2);
    expect(at(0, 259)).toBe(3); // partial column block
    expect(at(128, 0)).toBe(4); // partial row block
    expect(at(129, 259)).toBe(6); // the corner
  });

  it("refuses a scale tensor of the wrong size", () => {
    expect(() => dequantFp8Blocks(new Uint8Array(130 * 260), 130, 260, new Float32Array(4), [128, 128])).toThrow(/weight_scale_inv/);
  });
});
