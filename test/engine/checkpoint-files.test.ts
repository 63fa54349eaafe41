import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Checkpoint } from "../../gpu-backend/engine/checkpoint.js";
import { ConfigError, parseModelConfig } from "../../gpu-backend/engine/config.js";
import { decodeE4M3 } from "../../gpu-backend/engine/fp8.js";
import { ContiguousLatentCache } from "../../gpu-backend/engine/latent-cache.js";
import { DeepSeekModel } from "../../gpu-backend/engine/model.js";
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from "../../gpu-backend/engine/safetensors.js";

const GOLDEN = "test/fixtures/golden/tiny-v3";
const goldenConfig = JSON.parse(readFileSync(join(GOLDEN, "config.json"), "utf8")) as Record<string, unknown>;
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "ckpt-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const f32 = (xs: number[]) => new Uint8Array(Float32Array.from(xs).buffer);
function writeFile(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}
function rawHeader(header: unknown, data = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe("safetensors validation", () => {
  const good = encodeSafetensors([{ name: "w", dtype: "F32", shape: [2, 2], data: f32([1, 2, 3, 4]) }]);

  it("reads a well-formed file", () => {
    const f = new SafetensorsFile(writeFile("good.safetensors", good));
    expect(f.tensors.get("w")!.shape).toEqual([2, 2]);
    f.close();
  });

  it.each([
    ["empty file", new Uint8Array(0), /too short/],
    ["header length beyond the file", (() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, 1n << 40n, true); return b; })(), /header length/],
    ["truncated data", good.slice(0, good.length - 4), /truncated/],
    ["header not JSON", rawHeader("x").map((b, i) => (i === 8 ? 0x7b : b)), /not valid JSON/],
    ["header an array", rawHeader([1, 2]), /not a JSON object/],
    ["unknown dtype", rawHeader({ w: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /unsupported dtype/],
    ["offsets disagree with shape", rawHeader({ w: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, new Uint8Array(8)), /needs 8/],
    ["negative shape", rawHeader({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /bad shape/],
    ["reversed offsets", rawHeader({ w: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }, new Uint8Array(4)), /bad data_offsets/],
    ["overlapping tensors", rawHeader({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), /overlap/],
  ])("%s → a clear error", (name, bytes, pattern) => {
    expect(() => new SafetensorsFile(writeFile(`${name.replace(/\W/g, "_")}.safetensors`, bytes))).toThrow(pattern);
  });

  it("a tensor whose shape disagrees with config.json is named in the error", () => {
    const ck = join(dir, "wrong-shape");
    mkdirSync(ck, { recursive: true });
    writeFileSync(join(ck, "config.json"), JSON.stringify(goldenConfig));
    writeFileSync(join(ck, "model.safetensors"), encodeSafetensors([{ name: "model.embed_tokens.weight", dtype: "F32", shape: [2, 2], data: f32([1, 2, 3, 4]) }]));
    const c = new Checkpoint(ck);
    expect(() => c.get("model.embed_tokens.weight", [512, 64])).toThrow(/model.embed_tokens.weight.*\[2,2\].*\[512,64\]/);
    expect(() => c.get("lm_head.weight")).toThrow(/no tensor 'lm_head.weight'/);
    c.close();
  });
});

describe("config.json validation", () => {
  it.each([
    [{ model_type: "llama" }, /unsupported model_type "llama"/],
    [{ n_group: 3 }, /n_routed_experts \(16\) is not divisible by n_group \(3\)/],
    [{ topk_group: 5 }, /topk_group: 5 exceeds n_group 4/],
    [{ num_experts_per_tok: 32 }, /exceeds n_routed_experts/],
    [{ scoring_func: "softmax" }, /noaux_tc routing uses sigmoid/],
    [{ rope_scaling: { type: "linear", factor: 2 } }, /original_max_position_embeddings|unsupported rope scaling/],
    [{ rope_scaling: { type: "dynamic", factor: 2, original_max_position_embeddings: 10 } }, /unsupported rope scaling "dynamic"/],
    [{ qk_rope_head_dim: 7 }, /must be even/],
    [{ hidden_act: "gelu" }, /silu/],
    [{ hidden_size: undefined }, /hidden_size/],
    [{ hidden_size: -4 }, /hidden_size/],
    [{ quantization_config: { quant_method: "awq" } }, /unsupported awq/],
  ])("%j → ConfigError", (patch, pattern) => {
    expect(() => parseModelConfig({ ...goldenConfig, ...patch })).toThrow(ConfigError);
    expect(() => parseModelConfig({ ...goldenConfig, ...patch })).toThrow(pattern);
  });
});

/** Splits the golden checkpoint into shards, and into an FP8 block-quantised copy, and checks both load as the original. */
describe("sharded and FP8 checkpoints", () => {
  const src = new SafetensorsFile(join(GOLDEN, "model.safetensors"));
  const names = [...src.tensors.keys()];
  const tensor = (n: string): TensorToWrite => {
    const { info, bytes } = src.readBytes(n);
    return { name: n, dtype: "F32", shape: info.shape, data: bytes };
  };

  async function logits(modelDir: string): Promise<Float32Array> {
    const m = await DeepSeekModel.load(modelDir, { backend: "node" });
    const r = await m.forward([{ tokens: [5, 9, 200, 31, 77], past: 0, cache: new ContiguousLatentCache(m.config.layers, m.cacheWidth), logits: "last" }]);
    await m.close();
    return r.logits[0]!;
  }

  it("loads shards through model.safetensors.index.json", async () => {
    const d = join(dir, "sharded");
    mkdirSync(d, { recursive: true });
    copyFileSync(join(GOLDEN, "config.json"), join(d, "config.json"));
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((ns, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeFileSync(join(d, file), encodeSafetensors(ns.map(tensor)));
      for (const n of ns) weightMap[n] = file;
    });
    writeFileSync(join(d, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    expect([...(await logits(d))]).toEqual([...(await logits(GOLDEN))]);
  });

  it("dequantises FP8 E4M3 weights with 128×128 block scales at load", async () => {
    const codes = Array.from({ length: 256 }, (_, b) => decodeE4M3(b));
    const encode = (x: number) => {
      let best = 0;
      for (let b = 0; b < 256; b++) if (!Number.isNaN(codes[b]!) && Math.abs(codes[b]! - x) < Math.abs(codes[best]! - x)) best = b;
      return best;
    };
    const fp8Dir = join(dir, "fp8");
    const refDir = join(dir, "fp8-reference");
    mkdirSync(fp8Dir, { recursive: true });
    mkdirSync(refDir, { recursive: true });
    const block = 16; // small blocks so the tiny matrices have several, some partial
    const fp8Tensors: TensorToWrite[] = [];
    const refTensors: TensorToWrite[] = [];
    for (const n of names) {
      const t = tensor(n);
      const quantise = t.shape.length === 2 && /proj\.weight$/.test(n);
      if (!quantise) {
        fp8Tensors.push(t);
        refTensors.push(t);
        continue;
      }
      const [rows, cols] = t.shape as [number, number];
      const w = new Float32Array(t.data.buffer, t.data.byteOffset, rows * cols);
      const sr = Math.ceil(rows / block);
      const sc = Math.ceil(cols / block);
      const scale = new Float32Array(sr * sc);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
        const k = Math.floor(r / block) * sc + Math.floor(c / block);
        scale[k] = Math.max(scale[k]!, Math.abs(w[r * cols + c]!) / 448);
      }
      const q = new Uint8Array(rows * cols);
      const deq = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
        const s = scale[Math.floor(r / block) * sc + Math.floor(c / block)]! || 1;
        q[r * cols + c] = encode(w[r * cols + c]! / s);
        deq[r * cols + c] = codes[q[r * cols + c]!]! * s;
      }
      fp8Tensors.push({ name: n, dtype: "F8_E4M3", shape: t.shape, data: q });
      fp8Tensors.push({ name: n.replace(/\.weight$/, ".weight_scale_inv"), dtype: "F32", shape: [sr, sc], data: new Uint8Array(scale.buffer) });
      refTensors.push({ name: n, dtype: "F32", shape: t.shape, data: new Uint8Array(deq.buffer) });
    }
    writeFileSync(join(fp8Dir, "config.json"), JSON.stringify({ ...goldenConfig, quantization_config: { quant_method: "fp8", fmt: "e4m3", activation_scheme: "dynamic", weight_block_size: [block, block] } }));
    writeFileSync(join(fp8Dir, "model.safetensors"), encodeSafetensors(fp8Tensors));
    writeFileSync(join(refDir, "config.json"), JSON.stringify(goldenConfig));
    writeFileSync(join(refDir, "model.safetensors"), encodeSafetensors(refTensors));
    const a = await logits(fp8Dir);
    const b = await logits(refDir);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst).toBeLessThan(1e-5);
  });
});
