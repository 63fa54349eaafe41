import { z } from "zod";

/**
 * `config.json` of a DeepSeek-V3 / V2 Hugging Face checkpoint. Unknown keys are ignored (checkpoints carry
 * training-only fields); everything the engine computes with is validated here, with errors that name the field.
 */
const YarnSchema = z.looseObject({
  type: z.string().optional(),
  rope_type: z.string().optional(),
  factor: z.number().positive(),
  original_max_position_embeddings: z.number().int().positive(),
  beta_fast: z.number().positive().default(32),
  beta_slow: z.number().positive().default(1),
  mscale: z.number().default(1),
  mscale_all_dim: z.number().default(0),
});

const QuantSchema = z.looseObject({
  quant_method: z.string(),
  fmt: z.string().optional(),
  weight_block_size: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional(),
});

const posInt = z.number().int().positive();

const RawConfigSchema = z.looseObject({
  model_type: z.enum(["deepseek_v3", "deepseek_v2"], {
    error: (i) => `unsupported model_type ${JSON.stringify(i.input)}: this engine runs deepseek_v3 and deepseek_v2`,
  }),
  vocab_size: posInt,
  hidden_size: posInt,
  intermediate_size: posInt,
  moe_intermediate_size: posInt,
  num_hidden_layers: posInt,
  num_attention_heads: posInt,
  n_shared_experts: z.number().int().nonnegative().nullish(),
  n_routed_experts: posInt.nullish(),
  num_experts_per_tok: posInt.nullish(),
  routed_scaling_factor: z.number().positive().default(1),
  n_group: posInt.nullish(),
  topk_group: posInt.nullish(),
  topk_method: z.enum(["noaux_tc", "greedy", "group_limited_greedy"]).default("greedy"),
  scoring_func: z.enum(["sigmoid", "softmax"]).default("softmax"),
  norm_topk_prob: z.boolean().default(false),
  moe_layer_freq: posInt.default(1),
  first_k_dense_replace: z.number().int().nonnegative().default(0),
  q_lora_rank: posInt.nullable().default(null),
  kv_lora_rank: posInt,
  qk_nope_head_dim: posInt,
  qk_rope_head_dim: posInt,
  v_head_dim: posInt,
  hidden_act: z.literal("silu", { error: "only hidden_act 'silu' is supported" }).default("silu"),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  rope_scaling: YarnSchema.nullish(),
  rope_interleave: z.boolean().optional(),
  max_position_embeddings: posInt,
  tie_word_embeddings: z.boolean().default(false),
  bos_token_id: z.number().int().nullish(),
  eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
  quantization_config: QuantSchema.nullish(),
});

export interface ModelConfig {
  modelType: "deepseek_v3" | "deepseek_v2";
  vocabSize: number;
  hidden: number;
  intermediate: number;
  moeIntermediate: number;
  layers: number;
  heads: number;
  sharedExperts: number;
  routedExperts: number;
  topK: number;
  routedScaling: number;
  nGroup: number;
  topkGroup: number;
  topkMethod: "noaux_tc" | "greedy" | "group_limited_greedy";
  scoring: "sigmoid" | "softmax";
  normTopkProb: boolean;
  moeLayerFreq: number;
  firstDense: number;
  qLoraRank: number | null;
  kvLoraRank: number;
  nopeDim: number;
  ropeDim: number;
  vDim: number;
  rmsEps: number;
  ropeTheta: number;
  yarn: z.infer<typeof YarnSchema> | null;
  maxPositions: number;
  tieEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** FP8 block size when the checkpoint stores block-quantised weights. */
  fp8Block: [number, number] | null;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parses and cross-checks a config; throws ConfigError naming the offending field. */
export function parseModelConfig(raw: unknown): ModelConfig {
  const r = RawConfigSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ConfigError(`config.json: ${i.path.join(".") || "(root)"}: ${i.message}`);
  }
  const c = r.data;
  const fail = (field: string, msg: string): never => {
    throw new ConfigError(`config.json: ${field}: ${msg}`);
  };
  const routed = c.n_routed_experts ?? 0;
  if (routed === 0) fail("n_routed_experts", "a DeepSeek MoE model needs routed experts");
  const topK = c.num_experts_per_tok ?? fail("num_experts_per_tok", "required with routed experts");
  if (topK > routed) fail("num_experts_per_tok", `${topK} exceeds n_routed_experts ${routed}`);
  const nGroup = c.n_group ?? 1;
  const topkGroup = c.topk_group ?? nGroup;
  if (routed % nGroup !== 0) fail("n_group", `n_routed_experts (${routed}) is not divisible by n_group (${nGroup})`);
  if (topkGroup > nGroup) fail("topk_group", `${topkGroup} exceeds n_group ${nGroup}`);
  const perGroup = routed / nGroup;
  if (topK > topkGroup * perGroup) fail("num_experts_per_tok", `${topK} experts cannot be chosen from ${topkGroup} groups of ${perGroup}`);
  if (c.topk_method === "noaux_tc") {
    if (c.scoring_func !== "sigmoid") fail("scoring_func", "noaux_tc routing uses sigmoid scores");
    if (perGroup < 2) fail("n_group", "noaux_tc scores a group by its top-2 experts; groups need at least 2");
  }
  if (c.model_type === "deepseek_v2" && c.topk_method === "noaux_tc") fail("topk_method", "noaux_tc is a deepseek_v3 method");
  if (c.qk_rope_head_dim % 2 !== 0) fail("qk_rope_head_dim", "must be even (RoPE rotates pairs)");
  if (c.rope_scaling) {
    const kind = c.rope_scaling.type ?? c.rope_scaling.rope_type;
    if (kind !== "yarn") fail("rope_scaling.type", `unsupported rope scaling ${JSON.stringify(kind)} (only yarn)`);
  }
  if (c.rope_interleave === false) fail("rope_interleave", "only the interleaved RoPE layout of DeepSeek checkpoints is supported");
  if (c.first_k_dense_replace > c.num_hidden_layers) fail("first_k_dense_replace", "exceeds num_hidden_layers");
  let fp8Block: [number, number] | null = null;
  if (c.quantization_config) {
    if (c.quantization_config.quant_method !== "fp8") fail("quantization_config.quant_method", `unsupported ${c.quantization_config.quant_method}`);
    if (c.quantization_config.fmt && c.quantization_config.fmt !== "e4m3") fail("quantization_config.fmt", "only e4m3 is supported");
    fp8Block = c.quantization_config.weight_block_size ?? [128, 128];
  }
  const eos = c.eos_token_id;
  return {
    modelType: c.model_type,
    vocabSize: c.vocab_size,
    hidden: c.hidden_size,
    intermediate: c.intermediate_size,
    moeIntermediate: c.moe_intermediate_size,
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    sharedExperts: c.n_shared_experts ?? 0,
    routedExperts: routed,
    topK,
    routedScaling: c.routed_scaling_factor,
    nGroup,
    topkGroup,
    topkMethod: c.topk_method,
    scoring: c.scoring_func,
    normTopkProb: c.norm_topk_prob,
    moeLayerFreq: c.moe_layer_freq,
    firstDense: c.first_k_dense_replace,
    qLoraRank: c.q_lora_rank,
    kvLoraRank: c.kv_lora_rank,
    nopeDim: c.qk_nope_head_dim,
    ropeDim: c.qk_rope_head_dim,
    vDim: c.v_head_dim,
    rmsEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    yarn: c.rope_scaling ?? null,
    maxPositions: c.max_position_embeddings,
    tieEmbeddings: c.tie_word_embeddings,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
    fp8Block,
  };
}

/** Layer i is MoE iff i >= first_k_dense_replace and i % moe_layer_freq == 0 (HF's rule). */
export const isMoeLayer = (c: ModelConfig, layer: number): boolean =>
  layer >= c.firstDense && layer % c.moeLayerFreq === 0;

/** Numbers cached per token per layer: the normalised latent plus the rotated shared rope key. */
export const cacheWidth = (c: ModelConfig): number => c.kvLoraRank + c.ropeDim;
