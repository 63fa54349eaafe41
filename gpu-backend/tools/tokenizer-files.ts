import { bytesToUnicode } from "../engine/byte-level.js";
import { trainBpe } from "./bpe-trainer.js";

/** DeepSeek-V3's special tokens (fullwidth bars, "▁" for spaces), the subset a chat + FIM model needs. */
export const SPECIAL = {
  bos: "<｜begin▁of▁sentence｜>",
  eos: "<｜end▁of▁sentence｜>",
  pad: "<｜▁pad▁｜>",
  user: "<｜User｜>",
  assistant: "<｜Assistant｜>",
  fimHole: "<｜fim▁hole｜>",
  fimBegin: "<｜fim▁begin｜>",
  fimEnd: "<｜fim▁end｜>",
} as const;

/** DeepSeek-V3-style chat template: system text after BOS, then User/Assistant turns. */
export const CHAT_TEMPLATE =
  "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}" +
  "{% set ns = namespace(system_prompt='') %}" +
  "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{%- endif %}{%- endfor %}" +
  "{{ bos_token }}{{ ns.system_prompt }}" +
  "{%- for message in messages %}" +
  "{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{%- endif %}" +
  "{%- if message['role'] == 'assistant' and message['content'] is not none %}{{ '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}{%- endif %}" +
  "{%- endfor %}" +
  "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}";

/** DeepSeek-V3's pre-tokenizer: digits in threes, CJK runs, then the GPT-4-like word/punctuation split. */
const PRE_TOKENIZER = {
  type: "Sequence",
  pretokenizers: [
    { type: "Split", pattern: { Regex: "\\p{N}{1,3}" }, behavior: "Isolated", invert: false },
    { type: "Split", pattern: { Regex: "[一-龥\u3040-ゟ゠-ヿ]+" }, behavior: "Isolated", invert: false },
    {
      type: "Split",
      pattern: {
        Regex:
          "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
      },
      behavior: "Isolated",
      invert: false,
    },
    { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
  ],
};

/**
 * tokenizer.json + tokenizer_config.json for a byte-level BPE of `vocabSize` entries: BOS/EOS/PAD first
 * (ids 0–2, as DeepSeek's), the 256 byte symbols (so any UTF-8 round-trips), learned merges, then the
 * chat and fill-in-the-middle specials at the end.
 */
export function buildTokenizerFiles(vocabSize: number, corpus: string): { tokenizer: object; config: object } {
  const head = [SPECIAL.bos, SPECIAL.eos, SPECIAL.pad];
  const tail = [SPECIAL.user, SPECIAL.assistant, SPECIAL.fimHole, SPECIAL.fimBegin, SPECIAL.fimEnd];
  const byteSyms = bytesToUnicode();
  const mergeBudget = vocabSize - head.length - tail.length - 256;
  if (mergeBudget < 0) throw new Error(`vocab_size ${vocabSize} is too small for 256 byte symbols and specials`);
  const merges = trainBpe(corpus, mergeBudget);
  const vocab: Record<string, number> = {};
  let id = head.length;
  for (const s of byteSyms) vocab[s] = id++;
  for (const [a, b] of merges) vocab[a + b] = id++;
  // Pad with plain vocabulary entries no merge produces, so ids stay dense up to vocab_size.
  for (let k = 0; id + tail.length < vocabSize; k++) vocab[`<unused_${k}>`] = id++;
  const specials = [...head.map((c, i) => ({ id: i, content: c })), ...tail.map((c, i) => ({ id: id + i, content: c }))];
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((s) => ({ ...s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: PRE_TOKENIZER,
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => [a, b]),
    },
  };
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: SPECIAL.bos,
    eos_token: SPECIAL.eos,
    pad_token: SPECIAL.pad,
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: 4096,
    tokenizer_class: "LlamaTokenizerFast",
    chat_template: CHAT_TEMPLATE,
  };
  return { tokenizer, config };
}
