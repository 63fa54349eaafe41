import { beforeAll, describe, expect, it } from "vitest";
import { gw, newTenantKey } from "./helpers.js";

/**
 * Malformed or hostile bodies: every one must get a 4xx with OpenAI's error shape, never a 5xx,
 * and the gateway must keep answering afterwards.
 */
const msgs = [{ role: "user", content: "hi" }];
const big = "x".repeat(2 * 1024 * 1024);
const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
const deepObj = (n: number) => '{"a":'.repeat(n) + "1" + "}".repeat(n);

type Case = [name: string, body: BodyInit | null, contentType?: string | null, path?: string];

const cases: Case[] = [
  ["empty body", ""],
  ["whitespace only", "   \n\t "],
  ["literal null", "null"],
  ["array", "[]"],
  ["number", "42"],
  ["string", '"hello"'],
  ["true", "true"],
  ["truncated JSON", '{"model":"test-echo","messages":['],
  ["trailing comma", '{"model":"test-echo","messages":[],}'],
  ["single quotes", "{'model':'test-echo'}"],
  ["NaN literal", '{"model":"test-echo","messages":[],"temperature":NaN}'],
  ["comment", '{"model":"test-echo" /* hi */}'],
  ["two objects", '{"model":"a"}{"model":"b"}'],
  ["invalid UTF-8", new Uint8Array([0x7b, 0x22, 0x6d, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d])],
  ["overlong UTF-8", new Uint8Array([0x7b, 0x22, 0x6d, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d])],
  ["UTF-16 body", new Uint8Array([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00])],
  ["NUL bytes", "\u0000\u0000\u0000"],
  ["deep array nesting 100k", deep(100_000)],
  ["deep object nesting 10k", deepObj(10_000)],
  ["deep nesting inside an unknown field", JSON.stringify({ model: "test-echo", messages: msgs }).slice(0, -1) + `,"extra":${deep(5000)}}`],
  ["huge string over the body limit", JSON.stringify({ model: "test-echo", messages: [{ role: "user", content: big }] })],
  ["huge unknown field over the limit", JSON.stringify({ model: "test-echo", messages: msgs, pad: big })],
  ["missing model", JSON.stringify({ messages: msgs })],
  ["missing messages", JSON.stringify({ model: "test-echo" })],
  ["empty messages", JSON.stringify({ model: "test-echo", messages: [] })],
  ["model is a number", JSON.stringify({ model: 5, messages: msgs })],
  ["model is null", JSON.stringify({ model: null, messages: msgs })],
  ["model is empty", JSON.stringify({ model: "", messages: msgs })],
  ["model is an object", JSON.stringify({ model: { $gt: "" }, messages: msgs })],
  ["messages is an object", JSON.stringify({ model: "test-echo", messages: { role: "user" } })],
  ["messages is a string", JSON.stringify({ model: "test-echo", messages: "hi" })],
  ["message without role", JSON.stringify({ model: "test-echo", messages: [{ content: "hi" }] })],
  ["unknown role", JSON.stringify({ model: "test-echo", messages: [{ role: "root", content: "hi" }] })],
  ["content is a number", JSON.stringify({ model: "test-echo", messages: [{ role: "user", content: 1 }] })],
  ["content part without type", JSON.stringify({ model: "test-echo", messages: [{ role: "user", content: [{ text: "x" }] }] })],
  ["tool message without id", JSON.stringify({ model: "test-echo", messages: [{ role: "tool", content: "x" }] })],
  ["temperature too high", JSON.stringify({ model: "test-echo", messages: msgs, temperature: 9 })],
  ["temperature a string", JSON.stringify({ model: "test-echo", messages: msgs, temperature: "hot" })],
  ["top_p negative", JSON.stringify({ model: "test-echo", messages: msgs, top_p: -1 })],
  ["n zero", JSON.stringify({ model: "test-echo", messages: msgs, n: 0 })],
  ["n fractional", JSON.stringify({ model: "test-echo", messages: msgs, n: 1.5 })],
  ["max_tokens negative", JSON.stringify({ model: "test-echo", messages: msgs, max_tokens: -5 })],
  ["max_tokens huge float", JSON.stringify({ model: "test-echo", messages: msgs, max_tokens: 1e308 })],
  ["stream a string", JSON.stringify({ model: "test-echo", messages: msgs, stream: "yes" })],
  ["stream_options wrong type", JSON.stringify({ model: "test-echo", messages: msgs, stream: true, stream_options: { include_usage: "y" } })],
  ["too many stop strings", JSON.stringify({ model: "test-echo", messages: msgs, stop: ["a", "b", "c", "d", "e"] })],
  ["stop a number", JSON.stringify({ model: "test-echo", messages: msgs, stop: 7 })],
  ["logit_bias bad key", JSON.stringify({ model: "test-echo", messages: msgs, logit_bias: { abc: 1 } })],
  ["logit_bias out of range", JSON.stringify({ model: "test-echo", messages: msgs, logit_bias: { "1": 1000 } })],
  ["top_logprobs too many", JSON.stringify({ model: "test-echo", messages: msgs, logprobs: true, top_logprobs: 50 })],
  ["tool with bad name", JSON.stringify({ model: "test-echo", messages: msgs, tools: [{ type: "function", function: { name: "a b" } }] })],
  ["tool_choice nonsense", JSON.stringify({ model: "test-echo", messages: msgs, tool_choice: "always" })],
  ["response_format unknown", JSON.stringify({ model: "test-echo", messages: msgs, response_format: { type: "xml" } })],
  ["__proto__ pollution attempt", '{"model":"test-echo","messages":[{"role":"user","content":"x"}],"__proto__":{"admin":true},"temperature":"x"}'],
  ["model not in catalog", JSON.stringify({ model: "gpt-4o", messages: msgs })],
  ["very long model name", JSON.stringify({ model: "m".repeat(10_000), messages: msgs })],
  ["text/plain content type", JSON.stringify({ model: "test-echo", messages: msgs }), "text/plain"],
  ["form content type", "model=test-echo", "application/x-www-form-urlencoded"],
  ["multipart content type", "--x\r\n\r\n--x--", "multipart/form-data; boundary=x"],
  ["completions: prompt missing", JSON.stringify({ model: "test-echo" }), "application/json", "/v1/completions"],
  ["completions: prompt an object", JSON.stringify({ model: "test-echo", prompt: { a: 1 } }), "application/json", "/v1/completions"],
  ["completions: negative token ids", JSON.stringify({ model: "test-echo", prompt: [-1, 2] }), "application/json", "/v1/completions"],
  ["completions: logprobs too high", JSON.stringify({ model: "test-echo", prompt: "x", logprobs: 10 }), "application/json", "/v1/completions"],
];

describe("hostile and malformed bodies", () => {
  let key: string;
  beforeAll(async () => {
    ({ key } = await newTenantKey());
  });

  it("has at least 50 cases", () => expect(cases.length).toBeGreaterThanOrEqual(50));

  it.each(cases)("%s → 4xx with an OpenAI error", async (_name, body, contentType = "application/json", path = "/v1/chat/completions") => {
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (contentType) headers["content-type"] = contentType;
    const res = await gw(path, { method: "POST", headers, body });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.headers.get("x-request-id")).toBeTruthy();
    const json = (await res.json()) as { error: Record<string, unknown> };
    expect(Object.keys(json.error).sort()).toEqual(["code", "message", "param", "type"]);
    expect(typeof json.error.message).toBe("string");
  });

  it("names the offending field in param", async () => {
    const res = await gw("/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "test-echo", messages: [{ role: "user", content: "x" }, { role: "user", content: 3 }] }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { param: string } }).error.param).toBe("messages[1].content");
  });

  it("answers 413 for a body over the limit, even without Content-Length", async () => {
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 20; i++) c.enqueue(new Uint8Array(100 * 1024).fill(0x20));
        c.close();
      },
    });
    const res = await gw("/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: chunked,
    });
    expect(res.status).toBe(413);
  });

  it("still serves a normal request afterwards", async () => {
    const res = await gw("/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "test-echo", messages: msgs }),
    });
    expect(res.status).toBe(200);
  });
});

describe("routes", () => {
  it("answers unknown routes with 404 and wrong methods with 405, OpenAI-shaped", async () => {
    const { key } = await newTenantKey();
    for (const [path, headers] of [["/nope", {}], ["/v1/nope", { authorization: `Bearer ${key}` }]] as const) {
      const r404 = await gw(path, { headers });
      expect(r404.status).toBe(404);
      expect(r404.headers.get("x-request-id")).toBeTruthy();
      expect(((await r404.json()) as { error: { code: string } }).error.code).toBe("unknown_url");
    }
    const r405 = await gw("/v1/chat/completions", { headers: { authorization: `Bearer ${key}` } });
    expect(r405.status).toBe(405);
  });
});
