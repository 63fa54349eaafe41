import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseModelConfig } from "../engine/config.js";
import { safetensorsHeader } from "../engine/safetensors.js";
import { Rng } from "../engine/rng.js";
import { expectedTensors, type TensorSpec } from "../engine/tensor-names.js";

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
