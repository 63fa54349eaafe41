import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseModelConfig, type ModelConfig } from "./config.js";
import { dequantFp8Blocks } from "./fp8.js";
import { SafetensorsError, SafetensorsFile, toFloat32, type TensorInfo } from "./safetensors.js";

export interface LoadOptions {
  /** A specific weights file inside (or outside) the folder, instead of model.safetensors / the index. */
  weightsFile?: string;
  /** Called with a human-readable progress line while large checkpoints load. */
  onProgress?: (line: string) => void;
}

/**
 * A Hugging Face checkpoint folder: `config.json` plus `model.safetensors` or shards listed in
 * `model.safetensors.index.json`. Tensors are read lazily, widened to float32, FP8 blocks dequantised.
 */
export class Checkpoint {
  readonly config: ModelConfig;
  readonly rawConfig: Record<string, unknown>;
  private readonly files: SafetensorsFile[] = [];
  private readonly where = new Map<string, { file: SafetensorsFile; info: TensorInfo }>();
  private readonly totalBytes: number;
  private loadedBytes = 0;
  private lastReport = 0;

  constructor(readonly dir: string, private readonly opts: LoadOptions = {}) {
    const configPath = join(dir, "config.json");
    if (!existsSync(configPath)) throw new Error(`${dir}: no config.json (is this a Hugging Face checkpoint folder?)`);
    this.rawConfig = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    this.config = parseModelConfig(this.rawConfig);
    for (const path of this.weightFiles()) {
      const file = new SafetensorsFile(path);
      this.files.push(file);
      for (const info of file.tensors.values()) {
        if (this.where.has(info.name)) throw new SafetensorsError(`tensor '${info.name}' appears in two shards`);
        this.where.set(info.name, { file, info });
      }
    }
    this.totalBytes = [...this.where.values()].reduce((a, t) => a + (t.info.end - t.info.begin), 0);
  }

  private weightFiles(): string[] {
    if (this.opts.weightsFile) {
      const p = resolve(this.dir, this.opts.weightsFile);
      if (!existsSync(p)) throw new Error(`weights file ${p} does not exist`);
      return [p];
    }
    const index = join(this.dir, "model.safetensors.index.json");
    if (existsSync(index)) {
      const map = (JSON.parse(readFileSync(index, "utf8")) as { weight_map?: Record<string, string> }).weight_map;
      if (!map) throw new Error(`${index}: no weight_map`);
      return [...new Set(Object.values(map))].sort().map((f) => join(this.dir, f));
    }
    const single = join(this.dir, "model.safetensors");
    if (!existsSync(single)) throw new Error(`${this.dir}: neither model.safetensors nor model.safetensors.index.json`);
    return [single];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  shape(name: string): number[] {
    const t = this.where.get(name);
    if (!t) throw new SafetensorsError(`checkpoint has no tensor '${name}'`);
    return t.info.shape;
  }

  /** A tensor as float32, checked against the expected shape. */
  get(name: string, expectShape?: number[]): Float32Array {
    const t = this.where.get(name);
    if (!t) throw new SafetensorsError(`checkpoint has no tensor '${name}'`);
    if (expectShape && (t.info.shape.length !== expectShape.length || t.info.shape.some((d, i) => d !== expectShape[i]))) {
      throw new SafetensorsError(`tensor '${name}' has shape [${t.info.shape}], expected [${expectShape}] from config.json`);
    }
    const { info, bytes } = t.file.readBytes(name);
    this.progress(bytes.byteLength);
    if (info.dtype === "F8_E4M3") {
      const scaleName = name.replace(/\.weight$/, ".weight_scale_inv");
      if (!this.config.fp8Block || !this.where.has(scaleName)) {
        throw new SafetensorsError(`FP8 tensor '${name}' needs '${scaleName}' and a quantization_config with weight_block_size`);
      }
      if (info.shape.length !== 2) throw new SafetensorsError(`FP8 tensor '${name}' must be 2-D`);
      const scale = this.get(scaleName);
      return dequantFp8Blocks(bytes, info.shape[0]!, info.shape[1]!, scale, this.config.fp8Block);
    }
    return toFloat32(info.dtype, bytes);
  }

  private progress(bytes: number): void {
    this.loadedBytes += bytes;
    const now = Date.now();
    if (!this.opts.onProgress || this.totalBytes < 64 * 1024 * 1024) return;
    if (now - this.lastReport < 1000 && this.loadedBytes < this.totalBytes) return;
    this.lastReport = now;
    const gb = (b: number) => (b / 1e9).toFixed(2);
    this.opts.onProgress(
      `loading weights: ${Math.round((100 * this.loadedBytes) / this.totalBytes)}% (${gb(this.loadedBytes)} / ${gb(this.totalBytes)} GB)`,
    );
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}
