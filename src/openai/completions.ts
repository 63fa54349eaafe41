import { z } from "zod";
import { finishReasonSchema, modelField, responseHeaderFields, samplingFields, streamOptionsNeedStream } from "./common.js";
import { UsageSchema } from "./usage.js";

const tokenIds = z.array(z.number().int().nonnegative());

/**
 * The most choices (prompts × n) one request may ask for: OpenAI's own cap on `n`. Every choice is a sequence
 * on a pod, so without it a few kilobytes (20,000 one-letter prompts × n = 128) queued millions of them.
 */
const MAX_CHOICES_PER_REQUEST = 128;

/** The prompts `prompt` holds: a string or one token list is one prompt; a list of either is many. */
export function promptList(prompt: string | string[] | number[] | number[][]): (string | number[])[] {
  if (typeof prompt === "string") return [prompt];
  if (prompt.length > 0 && typeof prompt[0] === "number") return [prompt as number[]];
  return prompt as string[] | number[][];
}

function choicesWithinLimit(req: { prompt: string | string[] | number[] | number[][]; n?: number | null }, ctx: z.RefinementCtx): void {
  const prompts = promptList(req.prompt).length;
  const n = req.n ?? 1;
  if (prompts * n <= MAX_CHOICES_PER_REQUEST) return;
  ctx.addIssue({
    code: "custom",
    path: [prompts > MAX_CHOICES_PER_REQUEST ? "prompt" : "n"],
    message: `A request may ask for at most ${MAX_CHOICES_PER_REQUEST} choices (prompts × n); this one asks for ${prompts} × ${n}.`,
    params: { code: "invalid_value" },
  });
}

export const CompletionRequestSchema = z.looseObject({
  model: modelField,
  prompt: z.union([z.string(), z.array(z.string()), tokenIds, z.array(tokenIds)]),
  suffix: z.string().nullish(),
  echo: z.boolean().nullish(),
  best_of: z.number().int().min(1).max(20).nullish(),
  logprobs: z.number().int().min(0).max(5).nullish(),
  ...samplingFields,
  // 0 with `echo`: the prompt alone comes back (with `logprobs`, scored): how evaluation tools score text.
  max_tokens: z.number().int().min(0).nullish(),
}).superRefine((req, ctx) => {
  streamOptionsNeedStream(req, ctx);
  choicesWithinLimit(req, ctx);
  if (req.max_tokens === 0 && req.echo !== true) {
    ctx.addIssue({ code: "custom", path: ["max_tokens"], message: "max_tokens may be 0 only with echo (to score or return the prompt alone).", params: { code: "invalid_value" } });
  }
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

export const CompletionLogprobsSchema = z.looseObject({
  tokens: z.array(z.string()),
  token_logprobs: z.array(z.number().nullable()),
  top_logprobs: z.array(z.record(z.string(), z.number()).nullable()).nullable(),
  text_offset: z.array(z.number().int()),
});

const completionChoice = z.looseObject({
  index: z.number().int(),
  text: z.string(),
  logprobs: CompletionLogprobsSchema.nullable(),
  finish_reason: finishReasonSchema.nullable(),
});

/** Both the whole response and each streamed chunk are `text_completion` objects. */
export const CompletionSchema = z.looseObject({
  ...responseHeaderFields,
  object: z.literal("text_completion"),
  choices: z.array(completionChoice),
  usage: UsageSchema.nullish(),
});
export type Completion = z.infer<typeof CompletionSchema>;
