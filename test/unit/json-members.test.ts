import { describe, expect, it } from "vitest";
import { JsonMemberStream, type JsonMemberOptions } from "../../src/http/json-members.js";
import { Rng } from "../../gpu-backend/engine/rng.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Feeds `text` cut at `cuts` (byte offsets) and returns what came out, and the result. */
function run(text: string, opts: JsonMemberOptions, cuts: number[] = []) {
  const bytes = enc.encode(text);
  const s = new JsonMemberStream(opts);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...cuts, bytes.length]) {
    out.push(...s.feed(bytes.subarray(from, c)));
    from = c;
  }
  const all = new Uint8Array(out.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of out) {
    all.set(p, o);
    o += p.length;
  }
  return { text: dec.decode(all), ...s.end() };
}

const usage = { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19, prompt_tokens_details: { cached_tokens: 4 } };
// Strings full of structure characters, escapes and multi-byte text; a nested `usage` and `model` that are not top-level.
const answer = {
  id: "cmpl-1",
  object: "chat.completion",
  model: "upstream-name",
  choices: [
    { index: 0, message: { role: "assistant", content: 'a "quoted" {brace} [x], y: z \\ \\" ünïcødé 漢字 🙂' }, usage: { fake: 1 }, model: "inner" },
    { index: 1, message: { role: "assistant", content: "\\" }, logprobs: { content: [{ token: "}", logprob: -0.5, bytes: [125] }] } },
  ],
  usage,
  system_fingerprint: "fp",
};
const opts = { capture: ["usage"], replace: { model: JSON.stringify("public") } };

describe("JsonMemberStream", () => {
  it("captures and replaces top-level members only, leaving every other byte as it was", () => {
    const text = JSON.stringify(answer);
    const r = run(text, opts);
    expect(r.text).toBe(JSON.stringify({ ...answer, model: "public" }));
    expect(JSON.parse(r.captured.get("usage")!)).toEqual(usage);
    expect(r.captured.size).toBe(1);
    expect(r.complete).toBe(true);
  });

  it("gives the same result for every place one cut can fall, one-byte chunks, and random chunkings", () => {
    const text = JSON.stringify(answer);
    const want = JSON.stringify({ ...answer, model: "public" });
    const n = enc.encode(text).length;
    const rng = new Rng(5);
    const chunkings: number[][] = [Array.from({ length: n - 1 }, (_, i) => i + 1)];
    for (let c = 1; c < n; c++) chunkings.push([c]);
    for (let k = 0; k < 50; k++) {
      const cuts = new Set<number>();
      for (let j = 0; j < 1 + Math.floor(rng.uniform() * 20); j++) cuts.add(Math.floor(rng.uniform() * (n + 1)));
      chunkings.push([...cuts].sort((a, b) => a - b));
    }
    for (const cuts of chunkings) {
      const r = run(text, opts, cuts);
      expect(r.text).toBe(want);
      expect(r.captured.get("usage")).toBe(JSON.stringify(usage));
      expect(r.complete).toBe(true);
    }
  });

  it("handles whitespace between tokens and a replaced member in last place", () => {
    const last = { usage, model: "upstream-name" };
    const r = run(JSON.stringify(last, null, 2), opts, [30, 31, 60]);
    expect(JSON.parse(r.text)).toEqual({ usage, model: "public" });
    expect(JSON.parse(r.captured.get("usage")!)).toEqual(usage);
    expect(r.complete).toBe(true);
  });

  it("keeps the last of repeated members, as JSON.parse does", () => {
    const r = run('{"usage":{"a":1},"usage":{"a":2}}', opts);
    expect(r.captured.get("usage")).toBe('{"a":2}');
  });

  it("drops a captured value over its bound", () => {
    const r = run(JSON.stringify({ usage: { pad: "x".repeat(100) } }), { capture: ["usage"], maxCaptureBytes: 50 }, [20, 40, 60]);
    expect(r.captured.has("usage")).toBe(false);
    expect(r.complete).toBe(true);
  });

  it("says at once when text cannot be the start of an object, after any leading whitespace", () => {
    const s = new JsonMemberStream({ capture: ["usage"] });
    s.feed(enc.encode("   \n "));
    expect(s.invalid).toBe(false);
    s.feed(enc.encode('{"a":'));
    expect(s.invalid).toBe(false);
    for (const start of ['"x"', "[1]", "}", "7"]) {
      const t = new JsonMemberStream({});
      t.feed(enc.encode(` ${start}`));
      expect(t.invalid).toBe(true);
    }
  });

  it("reports text that is not one whole object as incomplete, and passes it on untouched", () => {
    for (const text of ['{"usage":{"a":1}', '{"model":"x"} trailing', '[{"usage":1}]', '"model"', '{"model":"unterminated', '}{"usage":1}', "  null"]) {
      const r = run(text, { capture: ["usage"] });
      expect(r.text).toBe(text);
      expect(r.complete).toBe(false);
      expect(r.captured.size).toBe(0);
    }
  });
});
