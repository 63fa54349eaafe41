import { z } from "zod";

/** Sampling fields shared by chat and legacy completions, with OpenAI's documented bounds. */
export const samplingFields = {
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  n: z.number().int().min(1).max(128).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  max_tokens: z.number().int().min(1).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.string().regex(/^\d+$/, "logit_bias keys must be token ids"), z.number().min(-100).max(100)).nullish(),
  seed: z.number().int().nullish(),
  user: z.string().max(512).nullish(),
  // Not OpenAI, but accepted by vLLM / SGLang / DeepSeek-compatible servers and by our pods.
  top_k: z.number().int().min(-1).nullish(),
};

/** OpenAI refuses `stream_options` on a request that does not stream (it would have no effect). */
export function streamOptionsNeedStream(req: { stream?: boolean | null; stream_options?: unknown }, ctx: z.RefinementCtx): void {
  if (req.stream_options != null && req.stream !== true) {
    ctx.addIssue({ code: "custom", path: ["stream_options"], message: "stream_options is only allowed when stream is true.", params: { code: "invalid_value" } });
  }
}

export const modelField = z.string().min(1, "model must be a non-empty string").max(256);

export const finishReasonSchema = z.enum(["stop", "length", "tool_calls", "content_filter", "function_call"]);

/** The fields every response object and stream chunk starts with (the `object` literal is set per type). */
export const responseHeaderFields = {
  id: z.string(),
  created: z.number().int(),
  model: z.string(),
  system_fingerprint: z.string().nullish(),
};
