import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEMO_CORPUS } from "./corpus.js";
import { writeRandomCheckpoint } from "./random-checkpoint.js";
import { TINY_SEED, TINY_V3_CONFIG } from "./tiny-config.js";
import { buildTokenizerFiles } from "./tokenizer-files.js";

/** Writes the complete demo checkpoint (config, weights, tokenizer, chat template) into `dir`. */
export function writeTinyModel(dir: string): void {
  writeRandomCheckpoint(dir, { ...TINY_V3_CONFIG }, TINY_SEED);
  const { tokenizer, config } = buildTokenizerFiles(TINY_V3_CONFIG.vocab_size, DEMO_CORPUS);
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
  writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 0, eos_token_id: 1, do_sample: true, temperature: 0.7, top_p: 0.95 }, null, 2) + "\n");
}
