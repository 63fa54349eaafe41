import { z } from "zod";
import { finishReasonSchema, modelField, responseHeaderFields, samplingFields, streamOptionsNeedStream } from "./common.js";
import { UsageSchema } from "./usage.js";

const tokenIds = z.array(z.number().int().nonnegative());

export const CompletionRequestSchema = z.looseObject({
  model: modelField,
  prompt: z.union([z.string(), z.array(z.string()), tokenIds, z.array(tokenIds)]),
  suffix: z.string().nullish(),
  echo: z.boolean().nullish(),
  best_of: z.number().int().min(1).max(20).nullish(),
  logprobs: z.number().int().min(0).max(5).nullish(),
  ...samplingFields,
}).superRefine(streamOptionsNeedStream);
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
