import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseModelConfig } from "../engine/config.js";
import { safetensorsHeader } from "../engine/safetensors.js";
import { expectedTensors, type TensorSpec } from "../engine/tensor-names.js";

/** xoshiro128** — small, fast, seedable; the same seed gives the same checkpoint on every machine. */
export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed: number) {
    // splitmix32 expands the seed into the four state words.
    this.s = new Uint32Array(4);
    let z = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b) >>> 0;
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (t ^ (t >>> 16)) >>> 0;
    }
  }

  nextU32(): number {
    const s = this.s;
    const result = Math.imul(((Math.imul(s[1]!, 5) << 7) | (Math.imul(s[1]!, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = ((s[3]! << 11) | (s[3]! >>> 21)) >>> 0;
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u = 1 - this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

/** Fills a tensor as the benchmark README specifies: linear N(0, 1/fan_in), embeddings N(0,1), norms 1+0.1·N, gate bias U(±0.15). */
export function initTensor(spec: TensorSpec, rng: Rng): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  switch (spec.init) {
    case "linear": {
      const sd = 1 / Math.sqrt(spec.shape[1]!);
      for (let i = 0; i < n; i++) out[i] = rng.normal() * sd;
      break;
    }
    case "embed":
      for (let i = 0; i < n; i++) out[i] = rng.normal();
      break;
    case "norm":
      for (let i = 0; i < n; i++) out[i] = 1 + 0.1 * rng.normal();
      break;
    case "gate_bias":
      for (let i = 0; i < n; i++) out[i] = (rng.uniform() * 2 - 1) * 0.15;
      break;
  }
  return out;
}

/**
 * Writes `config.json` and a deterministic random `model.safetensors` (F32) for `rawConfig` into `dir`,
 * streaming tensor by tensor so large configs never sit in memory whole.
 */
export function writeRandomCheckpoint(dir: string, rawConfig: Record<string, unknown>, seed: number, onProgress?: (line: string) => void): void {
  const cfg = parseModelConfig(rawConfig);
  const specs = expectedTensors(cfg);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...rawConfig, torch_dtype: "float32" }, null, 2) + "\n");
  const sizes = specs.map((s) => s.shape.reduce((a, b) => a * b, 1) * 4);
  const header = safetensorsHeader(specs.map((s) => ({ name: s.name, dtype: "F32" as const, shape: s.shape })), sizes, { format: "pt", generator: "moe-edge random-checkpoint", seed: String(seed) });
  const fd = openSync(join(dir, "model.safetensors"), "w");
  try {
    writeSync(fd, header);
    const rng = new Rng(seed);
    const total = sizes.reduce((a, b) => a + b, 0);
    let written = 0;
    let lastReport = Date.now();
    for (const spec of specs) {
      const data = initTensor(spec, rng);
      writeSync(fd, new Uint8Array(data.buffer));
      written += data.byteLength;
      if (onProgress && Date.now() - lastReport > 1000) {
        lastReport = Date.now();
        onProgress(`writing weights: ${Math.round((100 * written) / total)}%`);
      }
    }
  } finally {
    closeSync(fd);
  }
}
