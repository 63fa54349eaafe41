import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { eventually } from "../support/eventually.js";
import { authed, gw, newTenantKey } from "./helpers.js";

interface UpstreamState {
  requests: { path: string; headers: Record<string, string>; body: Record<string, unknown> }[];
  cancelled: string[];
  /** Requests that followed test-redirect's Location (by x-request-id). */
  followed: string[];
}
const upstreamState = async (): Promise<UpstreamState> => (await fetch(`${env.UPSTREAM_URL}/_state`)).json();

const errorOf = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;

const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  model: "test-echo",
  messages: [{ role: "user", content }],
  ...extra,
});

async function sseEvents(res: Response): Promise<string[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((e) => e.trim() !== "")
    .map((e) => e.replace(/^data: /, ""));
}

describe("chat completions", () => {
  it("answers non-streaming requests with the upstream's completion and usage", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, chat("hello edge world")));
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{24}$/);
    const body = (await res.json()) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
    expect(body.choices[0]!.message.content).toBe("hello edge world");
    expect(body.usage.completion_tokens).toBe(3);
  });

  it("streams chunks, then one usage chunk, then [DONE] when include_usage is set", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, chat("a b c", { stream: true, stream_options: { include_usage: true } })));
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = await sseEvents(res);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const usageChunks = chunks.filter((c) => c.usage);
    expect(usageChunks).toHaveLength(1);
    expect(chunks.at(-1)).toBe(usageChunks[0]);
    expect(usageChunks[0].choices).toEqual([]);
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe("a b c");
  });

  it("asks the upstream for usage but hides it from a client that did not", async () => {
    const { key, tenant } = await newTenantKey();
    const marker = `marker-${crypto.randomUUID()}`;
    const res = await gw("/v1/chat/completions", authed(key, chat(marker, { stream: true })));
    const events = await sseEvents(res);
    expect(events.join("\n")).not.toContain("usage");
    const seen = (await upstreamState()).requests.find((r) => JSON.stringify(r.body).includes(marker))!;
    expect((seen.body.stream_options as { include_usage: boolean }).include_usage).toBe(true);
    expect(seen.headers["x-tenant-id"]).toBe(tenant);
    expect(seen.headers["x-request-id"]).toBe(res.headers.get("x-request-id"));
    expect(seen.headers.authorization).toBeUndefined();
  });

  it("passes fields OpenAI accepts but the schema does not model through to the upstream", async () => {
    const { key } = await newTenantKey();
    const marker = `marker-${crypto.randomUUID()}`;
    const extra = { metadata: { trace: marker }, store: false, reasoning_effort: "low", service_tier: "auto", top_k: 5 };
    expect((await gw("/v1/chat/completions", authed(key, chat(marker, extra)))).status).toBe(200);
    const seen = (await upstreamState()).requests.find((r) => JSON.stringify(r.body).includes(marker))!;
    expect(seen.body).toMatchObject(extra);
  });

  it("serves legacy completions, streamed and not", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/completions", authed(key, { model: "test-echo", prompt: "one two" }));
    expect(((await res.json()) as { choices: { text: string }[] }).choices[0]!.text).toBe("one two");
    const s = await gw("/v1/completions", authed(key, { model: "test-echo", prompt: "x y", stream: true, stream_options: { include_usage: true } }));
    const events = await sseEvents(s);
    expect(events.at(-1)).toBe("[DONE]");
    expect(JSON.parse(events.at(-2)!).usage.total_tokens).toBe(7);
  });

  it("fails over to the next upstream before the first byte and reports the public model name", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-failover" })));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { model: string }).model).toBe("test-failover");
  });

  it("cancels the upstream stream when the client goes away", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-slow", stream: true })));
    const reader = res.body!.getReader();
    await reader.read();
    const before = (await upstreamState()).cancelled.length;
    await reader.cancel();
    const deadline = Date.now() + 5000;
    while ((await upstreamState()).cancelled.length === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await upstreamState()).cancelled.length).toBeGreaterThan(before);
  });

  it("ends a stream that the upstream drops with an OpenAI error event", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-cut", stream: true })));
    const events = await sseEvents(res);
    const last = JSON.parse(events.at(-1)!);
    expect(last.error).toMatchObject({ type: "server_error", code: "upstream_stream_error" });
    expect(events.filter((e) => e !== "[DONE]").length).toBe(3);
  });
});

describe("answers too large to buffer at the edge (over MAX_BUFFERED_ANSWER_BYTES, 64 KiB in tests)", () => {
  const rowsOf = async (tenant: string) =>
    (await env.DB.prepare("SELECT status, completion_tokens, estimated FROM usage_events WHERE tenant_id = ?").bind(tenant).all<{ status: string; completion_tokens: number; estimated: number }>()).results;
  /** The tenant's usage record, once its one request has been metered. */
  const onlyRowOf = async (tenant: string) => (await eventually(10_000, () => rowsOf(tenant), (r) => r.length === 1))[0];
  const big = (content: string, extra: Record<string, unknown> = {}) => chat(content, { model: "test-big", max_tokens: 3000, ...extra });

  it("passes the answer through with the public model name, metered from its usage, never cached", async () => {
    const { key, tenant } = await newTenantKey();
    const request = big(`big ${tenant}`, { model: "test-big-alias", temperature: 0 });
    for (let round = 0; round < 2; round++) {
      const res = await gw("/v1/chat/completions", authed(key, request));
      expect(res.status).toBe(200);
      expect(res.headers.get("x-cache")).toBe("MISS"); // the second would be a HIT had the first been stored
      const text = await res.text();
      expect(text.length).toBeGreaterThan(4 * 65536);
      const body = JSON.parse(text) as { model: string; choices: { message: { content: string }; logprobs: { content: unknown[] } }[]; usage: unknown; system_fingerprint: string };
      expect(body.model).toBe("test-big-alias");
      expect(body.choices[0]!.message.content.split(" ")).toHaveLength(3000);
      expect(body.choices[0]!.logprobs.content).toHaveLength(3000);
      expect(body.usage).toEqual({ prompt_tokens: 4, completion_tokens: 3000, total_tokens: 3004 });
      expect(body.system_fingerprint).toBe("fp_big");
    }
    expect((await upstreamState()).requests.filter((r) => JSON.stringify(r.body).includes(tenant))).toHaveLength(2);
    const rows = await eventually(10_000, () => rowsOf(tenant), (r) => r.length === 2);
    expect(rows).toEqual([0, 1].map(() => ({ status: "completed", completion_tokens: 3000, estimated: 0 })));
  });

  it.each([
    ["breaks off", "cut"],
    ["is silent for UPSTREAM_IDLE_TIMEOUT_MS (1 s in tests) in the middle", "stall"],
  ])("ends the client's body in an error when the backend %s, and meters an estimate", async (_, mode) => {
    const { key, tenant } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, big(mode)));
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
    expect(await onlyRowOf(tenant)).toMatchObject({ status: "failed", estimated: 1 });
  });

  it.each([
    ["breaks off an answer small enough to buffer", big("cut", { max_tokens: 100 })],
    ["is silent for UPSTREAM_IDLE_TIMEOUT_MS (1 s in tests) in the middle of an answer", big("silent")],
  ])("answers 502 when the backend %s, and meters an estimate", async (_, request) => {
    const { key, tenant } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, request));
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("upstream_error");
    expect(await onlyRowOf(tenant)).toMatchObject({ status: "failed", estimated: 1 });
  });

  it("answers 502 with the backend's error when its generation fails after it sent a 200 head", async () => {
    const { key, tenant } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, big("fail")));
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({ error: { message: "Generation failed: out of device memory", type: "server_error", param: null, code: "generation_failed" } });
    expect(await onlyRowOf(tenant)).toMatchObject({ status: "failed", estimated: 1 });
  });

  it("passes a stream's keepalives on, and ends a stream silent for UPSTREAM_IDLE_TIMEOUT_MS with an error event", async () => {
    const { key, tenant } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, big("silent", { stream: true })));
    expect(res.status).toBe(200);
    const events = (await res.text()).split("\n\n").filter((e) => e !== "");
    expect(events.slice(0, 2).map((e) => e.slice(0, 6))).toEqual(["data: ", ": keep"]);
    expect(JSON.parse(events[0]!.slice(6)).choices[0].delta.content).toBe("one");
    expect(JSON.parse(events.at(-1)!.slice(6)).error).toMatchObject({ code: "upstream_stream_error" });
    expect(events.at(-1)).toContain("sent nothing for 1000 ms");
    expect(await onlyRowOf(tenant)).toMatchObject({ status: "failed", estimated: 1 });
  });

  it("a model's own upstream timeouts replace the gateway's (first byte, and silence inside a stream)", async () => {
    const { key } = await newTenantKey();
    const ask = (model: string, content: string, stream = false) => gw("/v1/chat/completions", authed(key, chat(content, { model, stream })));
    // 800 ms before its first byte: within UPSTREAM_TIMEOUT_MS (5 s in tests), not within the model's 300 ms.
    expect((await ask("test-late", "800 first")).status).toBe(200);
    const strict = await ask("test-late-strict", "800 second");
    expect(strict.status).toBe(503);
    expect((await errorOf(strict)).message).toMatch(/timeout/);
    // 1500 ms of silence after a stream's first word: past UPSTREAM_IDLE_TIMEOUT_MS (1 s), within the model's 4 s.
    const cut = await (await ask("test-late", "1500 third word", true)).text();
    expect(cut).toContain("sent nothing for 1000 ms");
    const whole = await (await ask("test-late-patient", "1500 fourth word", true)).text();
    expect(whole).not.toContain("error");
    expect(whole.trimEnd().endsWith("data: [DONE]")).toBe(true);
    expect(whole).toContain("word");
  });

  it("cancels the backend's answer when the client leaves while it is still being generated, and meters an estimate", async () => {
    const { key, tenant } = await newTenantKey();
    const before = (await upstreamState()).cancelled.length;
    const client = new AbortController();
    const res = gw("/v1/chat/completions", { ...authed(key, big("hold")), signal: client.signal }).catch((e: unknown) => e);
    await eventually(5_000, upstreamState, (s) => s.requests.some((r) => r.headers["x-tenant-id"] === tenant));
    client.abort();
    await res;
    await eventually(5_000, upstreamState, (s) => s.cancelled.length > before);
    expect(await onlyRowOf(tenant)).toMatchObject({ status: "cancelled", estimated: 1 });
  });

  it("cancels the backend's answer when the client stops reading", async () => {
    const { key, tenant } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, big("leave")));
    const reader = res.body!.getReader();
    expect((await reader.read()).done).toBe(false);
    await reader.cancel();
    expect(await onlyRowOf(tenant)).toMatchObject({ status: "cancelled", estimated: 1 });
  });

  it("answers 502 when a large answer does not start as a JSON object", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, big("garbage")));
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("server_error");
  });
});

describe("upstream failures", () => {
  it("passes an upstream's OpenAI-shaped 4xx on", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-400" })));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).code).toBe("context_length_exceeded");
  });
  it("answers 502 when every upstream fails with 5xx", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-all-500" })));
    expect(res.status).toBe(502);
    expect((await errorOf(res)).message).toMatch(/test-all-500/);
  });
  it("answers 503 when no upstream is reachable, without leaking addresses", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-dead" })));
    expect(res.status).toBe(503);
    const e = await errorOf(res);
    expect(e.code).toBe("upstream_unavailable");
    expect(e.message).not.toMatch(/127\.0\.0\.1/);
  });
  it("answers 502 for a non-JSON upstream answer", async () => {
    const { key } = await newTenantKey();
    expect((await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-garbage" })))).status).toBe(502);
    expect((await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-garbage", stream: true })))).status).toBe(502);
  });
  it("a backend refusing the gateway (401, 404) is our fault: the next one is tried, then 502, never the backend's words", async () => {
    const { key } = await newTenantKey();
    const failed = await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-refused" })));
    expect(failed.status).toBe(502);
    const e = await errorOf(failed);
    expect(e.code).toBe("upstream_error");
    expect(e.message).toMatch(/HTTP 401 \(the backend refused the gateway\), HTTP 404/);
    expect(e.message).not.toMatch(/Incorrect API key|sk-up/);
    const served = await gw("/v1/chat/completions", authed(key, chat("hello there", { model: "test-refused-failover" })));
    expect(served.status).toBe(200);
    expect(((await served.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe("hello there");
  });
  it("an upstream's base URL may end in /v1, as OpenAI clients' base URLs do", async () => {
    const { key } = await newTenantKey();
    const marker = `from a v1 base ${crypto.randomUUID()}`;
    const res = await gw("/v1/chat/completions", authed(key, chat(marker, { model: "test-v1-base" })));
    expect(res.status).toBe(200);
    // Other test files share the upstream: pick this request out by its text.
    const mine = (await upstreamState()).requests.filter((r) => JSON.stringify(r.body).includes(marker));
    expect(mine.map((r) => r.path)).toEqual(["/v1/chat/completions"]);
  });
  it("answers 502 for an upstream that redirects, and does not follow it", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, chat("x", { model: "test-redirect" })));
    expect(res.status).toBe(502);
    expect((await errorOf(res)).message).toMatch(/HTTP 307/);
    expect((await upstreamState()).followed).toEqual([]);
  });
});

describe("models", () => {
  it("lists the catalog, or only the key's allowed models", async () => {
    const all = await newTenantKey();
    const list = (await (await gw("/v1/models", { headers: { authorization: `Bearer ${all.key}` } })).json()) as { object: string; data: { id: string; object: string }[] };
    expect(list.object).toBe("list");
    expect(list.data.map((m) => m.id)).toContain("test-echo");
    const some = await newTenantKey({ models: ["test-echo"] });
    const few = (await (await gw("/v1/models", { headers: { authorization: `Bearer ${some.key}` } })).json()) as { data: { id: string }[] };
    expect(few.data.map((m) => m.id)).toEqual(["test-echo"]);
  });
  it("retrieves one model; a model outside the key's list does not exist for it", async () => {
    const some = await newTenantKey({ models: ["test-echo"] });
    const h = { headers: { authorization: `Bearer ${some.key}` } };
    expect(((await (await gw("/v1/models/test-echo", h)).json()) as { id: string }).id).toBe("test-echo");
    const hidden = await gw("/v1/models/test-500", h);
    expect(hidden.status).toBe(404);
    expect(((await hidden.json()) as { error: { code: string } }).error.code).toBe("model_not_found");
    const chatRes = await gw("/v1/chat/completions", authed(some.key, chat("x", { model: "test-500" })));
    expect(chatRes.status).toBe(404);
    expect(((await chatRes.json()) as { error: { param: string } }).error.param).toBe("model");
  });
});
