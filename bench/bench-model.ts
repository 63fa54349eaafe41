import { join, resolve } from "node:path";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseModelConfig, type ModelConfig } from "../gpu-backend/engine/config.js";
import { DEMO_CORPUS } from "../gpu-backend/tools/corpus.js";
import { writeRandomCheckpoint } from "../gpu-backend/tools/random-checkpoint.js";
import { buildTokenizerFiles } from "../gpu-backend/tools/tokenizer-files.js";

/**
 * The benchmark model (bench/bench-moe.config.json, the same config other engines were measured on): 204.5M
 * parameters, ~36M active per token, 64 routed experts top-6. Weights are random but deterministic and are
 * generated on first use into models/bench-moe (≈ 818 MB, F32), then reused.
 */
export const BENCH_CONFIG_PATH = resolve("bench/bench-moe.config.json");
export const BENCH_SEED = 4242;

/** The benchmark model's config, as the engine reads it. */
export function benchModelConfig(): ModelConfig {
  return parseModelConfig(JSON.parse(readFileSync(BENCH_CONFIG_PATH, "utf8")));
}

export function ensureBenchModel(dir = resolve("models/bench-moe"), log: (s: string) => void = (s) => console.error(s)): string {
  const config = JSON.parse(readFileSync(BENCH_CONFIG_PATH, "utf8")) as Record<string, unknown>;
  const stamp = join(dir, "model.safetensors");
  const current = existsSync(join(dir, "config.json")) && existsSync(stamp)
    ? JSON.stringify({ ...(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as object), torch_dtype: undefined }) ===
      JSON.stringify({ ...config, torch_dtype: undefined })
    : false;
  if (!current) {
    log(`generating the benchmark checkpoint in ${dir} (once)…`);
    writeRandomCheckpoint(dir, config, BENCH_SEED, log);
  }
  if (!existsSync(join(dir, "tokenizer.json"))) {
    // The pod needs text in and out; the benchmark model gets the demo tokenizer at its vocabulary size.
    const { tokenizer, config: tokConfig } = buildTokenizerFiles(Number(config.vocab_size), DEMO_CORPUS);
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(tokConfig, null, 2));
  }
  return dir;
}
