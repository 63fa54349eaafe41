import { describe, expect, inject, it } from "vitest";
import { TextCodec } from "../../gpu-backend/engine/tokenizer.js";
import type { Sampled } from "../../gpu-backend/sampling/sampler.js";
import { ChoiceFormatter } from "../../gpu-backend/server/choice-format.js";

const codec = TextCodec.load(inject("tinyModelDir"));
const usage = { prompt_tokens: 0, completion_tokens: 1, total_tokens: 1 };

describe("ChoiceFormatter", () => {
  it("echoes a prompt of 150,000 scored tokens in a non-streaming answer", () => {
    const n = 150_000;
    const prompt = Array.from({ length: n }, (_, i) => 10 + (i % 50));
    const scores: Sampled[] = prompt.slice(1).map((token) => ({ token, logprob: -1, top: [{ token, logprob: -1 }] }));
    const fmt = new ChoiceFormatter("completion", "m", codec, 1, ["(echo)"], 1, "node", false);
    fmt.recordPrompt(0, prompt, 0, scores);
    fmt.record(0, "x", { token: 12, logprob: -0.5, top: [{ token: 12, logprob: -0.5 }] }, true);
    fmt.end(0, "length");
    const answer = JSON.parse(fmt.full({ ...usage, prompt_tokens: n }, true).join("")) as { choices: { logprobs: { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: unknown[] } }[] };
    const lp = answer.choices[0]!.logprobs;
    expect(lp.tokens).toHaveLength(n + 1);
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.token_logprobs[1]).toBe(-1);
    expect(lp.token_logprobs[n]).toBe(-0.5);
    expect(lp.top_logprobs[0]).toBeNull();
  });
});
