import type { ChatCompletionRequest, ChatMessage } from "../../src/openai/chat.js";
import { promptList, type CompletionRequest } from "../../src/openai/completions.js";
import { ApiError, errors } from "../../src/openai/errors.js";
import type { TextCodec } from "../engine/tokenizer.js";
import type { SamplingParams } from "../sampling/sampler.js";
import type { Encode, EncodeChat } from "../text/off-thread-encoder.js";

/** What a request asks the scheduler for: one or more prompts, each sampled `n` times. */
export interface GenerationPlan {
  prompts: number[][];
  /** Text to prepend to each prompt's choices (`echo`), or null. */
  echo: string[] | null;
  n: number;
  maxTokens: number;
  stop: string[];
  sampling: (choiceIndex: number) => SamplingParams;
  ignoreEos: boolean;
  /**
   * `echo` with `logprobs`: alternatives per scored prompt token, and per prompt where its echoed tokens start
   * (after the BOS the server added, which the echoed text does not show). Null otherwise.
   */
  promptLogprobs: { top: number; from: number[] } | null;
}

const FIM = { begin: "<｜fim▁begin｜>", hole: "<｜fim▁hole｜>", end: "<｜fim▁end｜>" };

function messageText(m: ChatMessage, i: number): string {
  const c = m.content;
  if (c === null || c === undefined) return "";
  if (typeof c === "string") return c;
  return c
    .map((part, j) => {
      if (part.type === "text") return part.text;
      if (part.type === "refusal") return part.refusal;
      throw errors.invalidParam(`messages[${i}].content[${j}].type`, `This model accepts text only; content parts of type '${part.type}' are not supported.`, "unsupported_content");
    })
    .join("");
}

function samplingFor(
  r: { temperature?: number | null; top_p?: number | null; top_k?: number | null; presence_penalty?: number | null; frequency_penalty?: number | null; logit_bias?: Record<string, number> | null; seed?: number | null },
  logprobs: boolean,
  topLogprobs: number,
  vocab: number,
): (choice: number) => SamplingParams {
  const bias = new Map<number, number>();
  for (const [k, v] of Object.entries(r.logit_bias ?? {})) {
    const t = Number(k);
    if (t >= vocab) throw errors.invalidParam("logit_bias", `Token id ${t} is outside the vocabulary (size ${vocab}).`);
    bias.set(t, v);
  }
  const base = r.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!;
  return (choice) => ({
    temperature: r.temperature ?? 1,
    topP: r.top_p ?? 1,
    topK: r.top_k ?? 0,
    presencePenalty: r.presence_penalty ?? 0,
    frequencyPenalty: r.frequency_penalty ?? 0,
    logitBias: bias,
    // Each choice has its own stream, reproducible from the request's seed.
    seed: (base + choice * 0x9e3779b9) >>> 0,
    logprobs,
    topLogprobs,
  });
}

function contextError(limit: number, prompt: number, completion: number, param: string): ApiError {
  return new ApiError(
    400,
    `This model's maximum context length is ${limit} tokens. However, you requested ${prompt + completion} tokens (${prompt} in the ${param === "messages" ? "messages" : "prompt"}, ${completion} in the completion). Please reduce the length of the ${param === "messages" ? "messages" : "prompt"} or completion.`,
    { param, code: "context_length_exceeded" },
  );
}

/** The completion budget: `maxTokens`, or what the context leaves. Only an explicit 0 (echo alone) may be 0. */
function checkContext(prompts: number[][], maxTokens: number | null, limit: number, param: string): number {
  const longest = Math.max(...prompts.map((p) => p.length));
  if (longest === 0) throw errors.invalidParam(param, "The prompt is empty.");
  const completion = maxTokens ?? limit - longest;
  if (longest + completion > limit || completion < (maxTokens === 0 ? 0 : 1)) throw contextError(limit, longest, Math.max(completion, 1), param);
  return completion;
}

export async function planChat(r: ChatCompletionRequest, codec: TextCodec, encodeChat: EncodeChat, vocab: number, contextLimit: number): Promise<GenerationPlan> {
  if (r.tools && r.tools.length > 0 && r.tool_choice !== "none") {
    throw errors.invalidParam("tools", "This model has no tool-calling template; send the request without tools.", "unsupported_parameter");
  }
  if (r.response_format && r.response_format.type !== "text") {
    throw errors.invalidParam("response_format", `response_format '${r.response_format.type}' is not supported by this server.`, "unsupported_parameter");
  }
  if (!codec.hasChatTemplate) throw errors.invalidParam("messages", "This model has no chat template; use /v1/completions.", "unsupported_endpoint");
  const turns = r.messages.map((m, i) => ({ ...m, role: m.role === "developer" ? "system" : m.role, content: messageText(m, i) }));
  const prompt = await encodeChat(turns);
  const requested = r.max_completion_tokens ?? r.max_tokens ?? null;
  const maxTokens = checkContext([prompt], requested, contextLimit, "messages");
  const stop = r.stop == null ? [] : typeof r.stop === "string" ? [r.stop] : r.stop;
  return {
    prompts: [prompt],
    echo: null,
    n: r.n ?? 1,
    maxTokens,
    stop: stop.filter((s) => s.length > 0),
    sampling: samplingFor(r, r.logprobs === true, r.logprobs ? (r.top_logprobs ?? 0) : 0, vocab),
    ignoreEos: r.ignore_eos === true,
    promptLogprobs: null,
  };
}

export async function planCompletion(r: CompletionRequest, codec: TextCodec, encode: Encode, vocab: number, contextLimit: number): Promise<GenerationPlan> {
  if (r.best_of != null && r.best_of !== (r.n ?? 1)) {
    throw errors.invalidParam("best_of", "best_of different from n is not supported by this server.", "unsupported_parameter");
  }
  const prompts = promptList(r.prompt);
  const texts = prompts.map((p) => (typeof p === "string" ? p : null));
  if (prompts.length === 0) throw errors.invalidParam("prompt", "The prompt is empty.");
  const scorePrompt = r.echo === true && r.logprobs != null;
  if (scorePrompt && r.suffix != null && r.suffix !== "") {
    throw errors.invalidParam("suffix", "echo with logprobs cannot be combined with suffix.", "unsupported_parameter");
  }
  const tokenPrompts: number[][] = [];
  for (const p of prompts) {
    if (typeof p !== "string") {
      if (p.some((t) => t >= vocab)) throw errors.invalidParam("prompt", `Token ids must be below the vocabulary size ${vocab}.`);
      tokenPrompts.push(p);
    } else if (r.suffix != null && r.suffix !== "") {
      if (codec.tokenId(FIM.begin) === undefined || codec.tokenId(FIM.hole) === undefined || codec.tokenId(FIM.end) === undefined) {
        throw errors.invalidParam("suffix", "This model has no fill-in-the-middle tokens; suffix is not supported.", "unsupported_parameter");
      }
      tokenPrompts.push(await encode(`${FIM.begin}${p}${FIM.hole}${r.suffix}${FIM.end}`, { addBos: true }));
    } else {
      tokenPrompts.push(await encode(p, { addBos: true }));
    }
  }
  const maxTokens = checkContext(tokenPrompts, r.max_tokens ?? 16, contextLimit, "prompt");
  const stop = r.stop == null ? [] : typeof r.stop === "string" ? [r.stop] : r.stop;
  const logprobs = r.logprobs != null;
  return {
    prompts: tokenPrompts,
    echo: r.echo ? texts.map((t, i) => t ?? codec.decode(tokenPrompts[i]!)) : null,
    n: r.n ?? 1,
    maxTokens,
    stop: stop.filter((s) => s.length > 0),
    sampling: samplingFor(r, logprobs, r.logprobs ?? 0, vocab),
    ignoreEos: r.ignore_eos === true,
    promptLogprobs: scorePrompt
      ? { top: r.logprobs!, from: tokenPrompts.map((ids, i) => (texts[i] !== null && codec.bosId !== undefined && ids[0] === codec.bosId ? 1 : 0)) }
      : null,
  };
}
