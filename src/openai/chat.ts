import { z } from "zod";
import { finishReasonSchema, modelField, responseHeaderFields, samplingFields, streamOptionsNeedStream } from "./common.js";
import { UsageSchema } from "./usage.js";

const textPart = z.looseObject({ type: z.literal("text"), text: z.string() });
const contentPart = z.union([
  textPart,
  z.looseObject({ type: z.literal("image_url"), image_url: z.looseObject({ url: z.string() }) }),
  z.looseObject({ type: z.literal("input_audio"), input_audio: z.looseObject({ data: z.string(), format: z.string() }) }),
  z.looseObject({ type: z.literal("file"), file: z.looseObject({}) }),
  z.looseObject({ type: z.literal("refusal"), refusal: z.string() }),
]);

const toolCall = z.looseObject({
  id: z.string(),
  type: z.literal("function"),
  function: z.looseObject({ name: z.string(), arguments: z.string() }),
});

export const ChatMessageSchema = z.discriminatedUnion("role", [
  z.looseObject({
    role: z.literal("system"),
    content: z.union([z.string(), z.array(textPart)]),
    name: z.string().optional(),
  }),
  z.looseObject({
    role: z.literal("developer"),
    content: z.union([z.string(), z.array(textPart)]),
    name: z.string().optional(),
  }),
  z.looseObject({
    role: z.literal("user"),
    content: z.union([z.string(), z.array(contentPart)]),
    name: z.string().optional(),
  }),
  z.looseObject({
    role: z.literal("assistant"),
    content: z.union([z.string(), z.array(contentPart)]).nullish(),
    name: z.string().optional(),
    refusal: z.string().nullish(),
    tool_calls: z.array(toolCall).optional(),
  }),
  z.looseObject({
    role: z.literal("tool"),
    content: z.union([z.string(), z.array(textPart)]),
    tool_call_id: z.string(),
  }),
  z.looseObject({ role: z.literal("function"), content: z.string().nullable(), name: z.string() }),
]);
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

const tool = z.looseObject({
  type: z.literal("function"),
  function: z.looseObject({
    name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, "function names are 1-64 of a-z, A-Z, 0-9, _ and -"),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

export const ChatCompletionRequestSchema = z.looseObject({
  model: modelField,
  messages: z.array(ChatMessageSchema).min(1, "messages must contain at least one message"),
  ...samplingFields,
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(tool).max(128).optional(),
  tool_choice: z
    .union([
      z.enum(["none", "auto", "required"]),
      z.looseObject({ type: z.literal("function"), function: z.looseObject({ name: z.string() }) }),
    ])
    .optional(),
  parallel_tool_calls: z.boolean().optional(),
  response_format: z
    .looseObject({ type: z.enum(["text", "json_object", "json_schema"]) })
    .optional(),
}).superRefine((req, ctx) => {
  streamOptionsNeedStream(req, ctx);
  if (req.top_logprobs != null && req.logprobs !== true) {
    ctx.addIssue({ code: "custom", path: ["top_logprobs"], message: "top_logprobs is only allowed when logprobs is true.", params: { code: "invalid_value" } });
  }
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

const tokenLogprob = z.looseObject({
  token: z.string(),
  logprob: z.number(),
  bytes: z.array(z.number().int()).nullable(),
  top_logprobs: z.array(z.looseObject({ token: z.string(), logprob: z.number(), bytes: z.array(z.number().int()).nullable() })),
});
export const ChatLogprobsSchema = z.looseObject({ content: z.array(tokenLogprob).nullable() });

export const ChatCompletionSchema = z.looseObject({
  ...responseHeaderFields,
  object: z.literal("chat.completion"),
  choices: z.array(
    z.looseObject({
      index: z.number().int(),
      message: z.looseObject({
        role: z.literal("assistant"),
        content: z.string().nullable(),
        refusal: z.string().nullish(),
        tool_calls: z.array(toolCall).optional(),
      }),
      logprobs: ChatLogprobsSchema.nullable(),
      finish_reason: finishReasonSchema,
    }),
  ),
  usage: UsageSchema.optional(),
});
export type ChatCompletion = z.infer<typeof ChatCompletionSchema>;

export const ChatCompletionChunkSchema = z.looseObject({
  ...responseHeaderFields,
  object: z.literal("chat.completion.chunk"),
  choices: z.array(
    z.looseObject({
      index: z.number().int(),
      delta: z.looseObject({ role: z.literal("assistant").optional(), content: z.string().nullish() }),
      logprobs: ChatLogprobsSchema.nullish(),
      finish_reason: finishReasonSchema.nullable(),
    }),
  ),
  usage: UsageSchema.nullish(),
});
export type ChatCompletionChunk = z.infer<typeof ChatCompletionChunkSchema>;
