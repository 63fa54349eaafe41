import type { z } from "zod";
import { describe, expect, it } from "vitest";
import { ChatCompletionRequestSchema } from "../../src/openai/chat.js";
import { CompletionRequestSchema } from "../../src/openai/completions.js";
import { ApiError } from "../../src/openai/errors.js";
import { formatParamPath, validateBody } from "../../src/openai/validate.js";

function paramOf(body: unknown, schema: z.ZodType = ChatCompletionRequestSchema): { param: string | null; code: string | null; message: string } {
  try {
    validateBody(schema, body);
  } catch (e) {
    const err = e as ApiError;
    expect(err.status).toBe(400);
    return { param: err.param, code: err.code, message: err.message };
  }
  throw new Error("expected a validation error");
}

const ok = { model: "m", messages: [{ role: "user", content: "hi" }] };

describe("validateBody", () => {
  it("formats paths the way OpenAI names params", () => {
    expect(formatParamPath(["messages", 0, "content"])).toBe("messages[0].content");
    expect(formatParamPath([])).toBeNull();
  });
  it("accepts a minimal request and keeps unknown fields", () => {
    const v = validateBody(ChatCompletionRequestSchema, { ...ok, metadata: { a: "b" }, store: true, reasoning_effort: "low" });
    expect(v.metadata).toEqual({ a: "b" });
    expect(v.reasoning_effort).toBe("low");
  });
  it("names a missing required field", () => {
    expect(paramOf({ messages: ok.messages })).toMatchObject({ param: "model", code: "missing_required_parameter" });
    expect(paramOf({ ...ok, messages: [{ role: "user" }] })).toMatchObject({ param: "messages[0].content", code: "missing_required_parameter" });
  });
  it("says a field of the wrong type is invalid, not missing", () => {
    for (const [field, value] of [["seed", 1.5], ["temperature", "hot"], ["n", 2.5], ["model", null], ["max_tokens", "5"]] as const) {
      const e = paramOf({ ...ok, [field]: value });
      expect(e).toMatchObject({ param: field, code: "invalid_type" });
      expect(e.message).toMatch(new RegExp(`^Invalid value for '${field}': `));
    }
  });
  it("names the nested field that is wrong", () => {
    expect(paramOf({ ...ok, messages: [{ role: "user", content: 5 }] }).param).toBe("messages[0].content");
    expect(paramOf({ ...ok, messages: [{ role: "wizard", content: "x" }] }).param).toBe("messages[0].role");
    expect(paramOf({ ...ok, temperature: 3 }).param).toBe("temperature");
    expect(paramOf({ ...ok, stop: ["a", "b", "c", "d", "e"] }).param).toBe("stop");
    expect(paramOf({ ...ok, tools: [{ type: "function", function: { name: "bad name!" } }] }).param).toBe("tools[0].function.name");
  });
  it("says what is wrong with a value of a union field, by the branch its type matches", () => {
    expect(paramOf({ ...ok, stop: ["a", "b", "c", "d", "e"] })).toMatchObject({ param: "stop", code: "too_big", message: "Invalid value for 'stop': Too big: expected array to have <=4 items" });
    expect(paramOf({ ...ok, stop: ["a", 5] })).toMatchObject({ param: "stop[1]", code: "invalid_type" });
    expect(paramOf({ ...ok, stop: 5 })).toMatchObject({ param: "stop", message: "Invalid value for 'stop': Invalid input: expected string or array, received number" });
    expect(paramOf({ ...ok, messages: [{ role: "user", content: null }] }).message).toBe("Invalid value for 'messages[0].content': Invalid input: expected string or array, received null");
    // Several branches fit its type (a list of numbers or of lists): no guess.
    expect(paramOf({ model: "m", prompt: [1.5] }, CompletionRequestSchema)).toMatchObject({ param: "prompt", code: "invalid_union" });
    expect(paramOf({ model: "m" }, CompletionRequestSchema)).toMatchObject({ param: "prompt", code: "missing_required_parameter" });
  });
  it("refuses stream_options without stream, and top_logprobs without logprobs", () => {
    expect(paramOf({ ...ok, stream_options: { include_usage: true } })).toMatchObject({ param: "stream_options", code: "invalid_value" });
    expect(paramOf({ model: "m", prompt: "x", stream: false, stream_options: { include_usage: true } }, CompletionRequestSchema).param).toBe("stream_options");
    expect(validateBody(ChatCompletionRequestSchema, { ...ok, stream: true, stream_options: { include_usage: true } }).stream).toBe(true);
    expect(validateBody(ChatCompletionRequestSchema, { ...ok, stream_options: null }).stream_options).toBeNull();
    expect(paramOf({ ...ok, top_logprobs: 2 })).toMatchObject({ param: "top_logprobs", code: "invalid_value" });
    expect(paramOf({ ...ok, logprobs: false, top_logprobs: 2 }).param).toBe("top_logprobs");
    expect(validateBody(ChatCompletionRequestSchema, { ...ok, logprobs: true, top_logprobs: 2 }).top_logprobs).toBe(2);
  });
  it("refuses bodies that are not objects", () => {
    for (const b of [null, [], "x", 3, true]) expect(paramOf(b).param).toBeNull();
  });
  it("validates legacy completions prompts", () => {
    expect(validateBody(CompletionRequestSchema, { model: "m", prompt: [[1, 2], [3]] }).prompt).toEqual([[1, 2], [3]]);
    expect(paramOf({ model: "m", prompt: [1.5] }, CompletionRequestSchema).param).toMatch(/^prompt/);
  });
  it("bounds the choices a completions request asks for (prompts × n)", () => {
    const prompts = (k: number) => Array.from({ length: k }, () => "a");
    expect(validateBody(CompletionRequestSchema, { model: "m", prompt: prompts(128) }).prompt).toHaveLength(128);
    expect(validateBody(CompletionRequestSchema, { model: "m", prompt: prompts(2), n: 64 }).n).toBe(64);
    // One token list is one prompt, however long.
    expect(validateBody(CompletionRequestSchema, { model: "m", prompt: Array.from({ length: 500 }, (_, i) => i), n: 128 }).n).toBe(128);
    expect(paramOf({ model: "m", prompt: prompts(129) }, CompletionRequestSchema)).toMatchObject({ param: "prompt", code: "invalid_value" });
    expect(paramOf({ model: "m", prompt: [[1], [2], [3]], n: 43 }, CompletionRequestSchema)).toMatchObject({ param: "n", code: "invalid_value" });
    expect(paramOf({ model: "m", prompt: prompts(20_000), n: 128 }, CompletionRequestSchema).message).toMatch(/at most 128 choices .*20000 × 128/);
  });
});
