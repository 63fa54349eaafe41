import { describe, expect, it } from "vitest";
import { StreamAssembler } from "../../src/cache/completion-replay.js";

const head = { id: "chatcmpl-1", created: 7, model: "m", system_fingerprint: "fp" };
const usage = { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 };

describe("StreamAssembler", () => {
  it("rebuilds the whole answer of interleaved choices from their chunks", () => {
    const a = new StreamAssembler("chat");
    a.add({ ...head, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] });
    a.add({ ...head, choices: [{ index: 1, delta: { role: "assistant", content: "" }, finish_reason: null }] });
    a.add({ ...head, choices: [{ index: 1, delta: { content: "Bon" }, finish_reason: null }] });
    a.add({ ...head, choices: [{ index: 0, delta: { content: "Hel" }, finish_reason: null }] });
    a.add({ ...head, choices: [{ index: 0, delta: { content: "lo" }, finish_reason: null }] });
    a.add({ ...head, choices: [{ index: 1, delta: { content: "jour" }, finish_reason: null }] });
    a.add({ ...head, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] });
    a.add({ ...head, choices: [{ index: 1, delta: {}, finish_reason: "length" }] });
    a.add({ ...head, choices: [], usage });
    const answer = a.answer()!;
    expect(answer.response).toMatchObject({ id: "chatcmpl-1", object: "chat.completion", created: 7, model: "m", system_fingerprint: "fp", usage });
    expect(answer.response.choices).toEqual([
      { index: 0, message: { role: "assistant", content: "Hello" }, logprobs: null, finish_reason: "stop" },
      { index: 1, message: { role: "assistant", content: "Bonjour" }, logprobs: null, finish_reason: "length" },
    ]);
    expect(answer.deltas).toEqual({ 0: ["Hel", "lo"], 1: ["Bon", "jour"] });
  });

  it("never caches a stream that ended without usage", () => {
    const a = new StreamAssembler("completion");
    a.add({ ...head, choices: [{ index: 0, text: "partial", finish_reason: null }] });
    expect(a.answer()).toBeNull();
  });

  it("keeps every piece of a long stream (each chunk costs the same, however many came before)", () => {
    const a = new StreamAssembler("completion");
    const n = 100_000;
    for (let i = 0; i < n; i++) a.add({ ...head, choices: [{ index: 0, text: `${i % 10}`, finish_reason: null }] });
    a.add({ ...head, choices: [{ index: 0, text: "", finish_reason: "length" }], usage: { ...usage, completion_tokens: n } });
    const text = a.answer()!.response.choices[0]!.text!;
    expect(text).toHaveLength(n);
    expect(text.slice(0, 12)).toBe("012345678901");
  });
});
