import { serve } from "@hono/node-server";
import { Hono, type Context } from "hono";
import type { AddressInfo } from "node:net";

/**
 * An OpenAI-compatible upstream whose behaviour is chosen by the model name, for testing how the gateway
 * forwards, streams, fails over and cancels. Tests of the real model use the real pod instead.
 *   test-echo     answers with the last user message's words (stream or not), with usage; chat with
 *                 `logprobs: true` gives each word a logprob of -(its position + 1) / 8
 *   test-500      HTTP 500
 *   test-400      an OpenAI-shaped 400 (context_length_exceeded)
 *   test-garbage  HTTP 200 that is not JSON / not an event stream
 *   test-redirect a 307 to POST /_followed, which would answer a chat completion (it records who came: `followed`
 *                 in GET /_state)
 *   test-slow     streams one word every 20 ms for a long time (for disconnect tests)
 *   test-late     test-echo, silent for as many ms as its first word says: before its answer, or in a stream
 *                 after that first word
 *   test-cut      streams two chunks then drops the connection
 *   test-hold     answers one chunk, then waits for GET /_release?marker=<last user message> (usage: 10 tokens)
 *   test-brief    streams five chunks 20 ms apart (usage: 10 tokens)
 *   test-big      a non-streaming answer of max_tokens words, each with logprobs (~100 bytes a word), sent in
 *                 16 KiB pieces with usage before a last member; a last user message of "cut" drops the
 *                 connection halfway, "stall" sends half of it and then nothing, "garbage" answers the same
 *                 bulk as HTML; as a pod does while it
 *                 generates, "fail" sends spaces and then an OpenAI error object (status 200), "silent"
 *                 one space and then nothing (streamed: one chunk, a keepalive comment, then nothing), and
 *                 "hold" a space every 200 ms until its client (the gateway) goes away
 * Under /denied/v1/… every request gets a 401 (a wrong upstream key), under /elsewhere/v1/… a 404 (a model this
 * upstream does not serve); both answer GET …/health.
 * In-flight requests are counted per x-tenant-id (GET /_inflight?tenant=…): current and the maximum seen.
 *
 * It is also a webhook receiver: POST /_hooks/<name> answers by name — `ok-…` 200, `flaky<N>-…` 503 with
 * Retry-After: 0 for the first N attempts of each webhook-id then 200, `gone-…` 410, `moved-…` a 307 to
 * `/_hooks/ok-…` (the same rest) — and GET /_hooks?name=…
 * lists what arrived (headers, raw body, the status answered).
 */
export interface RecordedRequest {
  path: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  /** The body exactly as received (for signature checks). */
  raw: string;
}

export interface ScriptedUpstream {
  url: string;
  requests: RecordedRequest[];
  /** Streams the upstream saw cancelled by its client (the gateway). */
  cancelled: string[];
  close(): Promise<void>;
}

const words = (body: Record<string, unknown>): string[] => {
  const messages = body.messages as { role: string; content: unknown }[] | undefined;
  const text = messages
    ? String([...messages].reverse().find((m) => m.role === "user")?.content ?? "")
    : String(body.prompt ?? "");
  return text.split(/\s+/).filter(Boolean);
};

/** See `test-big` above. */
function bigAnswer(id: string, model: string, chat: boolean, n: number, mode: string, stream: boolean, cancelled: string[]): Response {
  const enc = new TextEncoder();
  if (mode === "hold") {
    let keepalive: ReturnType<typeof setInterval> | undefined;
    return new Response(
      new ReadableStream<Uint8Array>({
        start(ctl) {
          keepalive = setInterval(() => ctl.enqueue(enc.encode(" ")), 200);
        },
        cancel() {
          clearInterval(keepalive);
          cancelled.push(id);
        },
      }),
      { headers: { "content-type": "application/json" } },
    );
  }
  if (stream && mode === "silent") {
    const piece = { id, object: "chat.completion.chunk", created: 1, model, choices: [{ index: 0, delta: { content: "one" }, logprobs: null, finish_reason: null }] };
    return new Response(
      new ReadableStream<Uint8Array>({
        start(ctl) {
          ctl.enqueue(enc.encode(`data: ${JSON.stringify(piece)}\n\n: keepalive\n\n`));
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  }
  if (mode === "fail" || mode === "silent") {
    const failure = { error: { message: "Generation failed: out of device memory", type: "server_error", param: null, code: "generation_failed" } };
    return new Response(
      new ReadableStream<Uint8Array>({
        start(ctl) {
          ctl.enqueue(enc.encode(" "));
          if (mode === "silent") return;
          ctl.enqueue(enc.encode(`  ${JSON.stringify(failure)}`));
          ctl.close();
        },
      }),
      { headers: { "content-type": "application/json" } },
    );
  }
  const text = Array.from({ length: n }, (_, i) => `w${i}`).join(" ");
  const logprobs = { content: Array.from({ length: n }, (_, i) => ({ token: `w${i}`, logprob: -0.25, bytes: null, top_logprobs: [{ token: "x", logprob: -2 }] })) };
  const usage = { prompt_tokens: 4, completion_tokens: n, total_tokens: n + 4 };
  const choice = chat ? { index: 0, message: { role: "assistant", content: text }, logprobs, finish_reason: "length" } : { index: 0, text, logprobs, finish_reason: "length" };
  const json = JSON.stringify({ id, object: chat ? "chat.completion" : "text_completion", created: 1, model, choices: [choice], usage, system_fingerprint: "fp_big" });
  const bytes = enc.encode(mode === "garbage" ? `<html>${json}</html>` : json);
  const end = mode === "cut" || mode === "stall" ? bytes.length >> 1 : bytes.length;
  return new Response(
    new ReadableStream<Uint8Array>({
      start(ctl) {
        for (let o = 0; o < end; o += 16384) ctl.enqueue(bytes.subarray(o, Math.min(o + 16384, end)));
        if (mode === "cut") setTimeout(() => ctl.error(new Error("connection dropped")), 10);
        else if (mode !== "stall") ctl.close();
      },
    }),
    { headers: { "content-type": "application/json" } },
  );
}

export async function startScriptedUpstream(port = 0): Promise<ScriptedUpstream> {
  const requests: RecordedRequest[] = [];
  const cancelled: string[] = [];
  const holds = new Map<string, (() => void)[]>();
  const inflight = new Map<string, { current: number; max: number }>();
  const app = new Hono();

  app.get("/_release", (c) => {
    const marker = c.req.query("marker") ?? "";
    const waiting = holds.get(marker) ?? [];
    holds.delete(marker);
    waiting.forEach((release) => release());
    return c.json({ released: waiting.length });
  });
  app.get("/_inflight", (c) => c.json(inflight.get(c.req.query("tenant") ?? "") ?? { current: 0, max: 0 }));

  const hooks: { name: string; headers: Record<string, string>; body: string; status: number }[] = [];
  const attemptsById = new Map<string, number>();
  app.post("/_hooks/:name", async (c) => {
    const name = c.req.param("name");
    const body = await c.req.text();
    const headers = Object.fromEntries(c.req.raw.headers.entries());
    const id = headers["webhook-id"] ?? "";
    const n = (attemptsById.get(`${name}/${id}`) ?? 0) + 1;
    attemptsById.set(`${name}/${id}`, n);
    const flaky = /^flaky(\d+)-/.exec(name);
    const status = name.startsWith("gone-") ? 410 : name.startsWith("moved-") ? 307 : flaky && n <= Number(flaky[1]) ? 503 : 200;
    hooks.push({ name, headers, body, status });
    if (status === 307) return c.body("moved", 307, { location: `/_hooks/ok-${name.slice("moved-".length)}` });
    return c.body(status === 200 ? "ok" : "no", status as 200, status === 503 ? { "retry-after": "0" } : {});
  });
  app.get("/_hooks", (c) => c.json(hooks.filter((h) => h.name === c.req.query("name"))));

  const followed: string[] = [];
  app.post("/_followed", (c) => {
    followed.push(c.req.header("x-request-id") ?? "");
    return c.json({ id: "followed", object: "chat.completion", created: 1, model: "test-redirect", choices: [{ index: 0, message: { role: "assistant", content: "followed" }, logprobs: null, finish_reason: "stop" }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
  });
  app.get("/_state", (c) => c.json({ requests, cancelled, followed }));
  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/:prefix{denied|elsewhere}/health", (c) => c.json({ status: "ok" }));

  /** Records a generation request (GET /_state lists them) and returns it. */
  const record = async (c: Context): Promise<RecordedRequest> => {
    const raw = await c.req.text();
    const r = { path: c.req.path, headers: Object.fromEntries(c.req.raw.headers.entries()), body: JSON.parse(raw) as Record<string, unknown>, raw };
    requests.push(r);
    return r;
  };
  app.post("/denied/v1/*", async (c) => {
    await record(c);
    return c.json({ error: { message: "Incorrect API key provided: sk-up***et.", type: "invalid_request_error", param: null, code: "invalid_api_key" } }, 401);
  });
  app.post("/elsewhere/v1/*", async (c) => {
    await record(c);
    return c.json({ error: { message: "The model does not exist.", type: "invalid_request_error", param: "model", code: "model_not_found" } }, 404);
  });
  app.post("/v1/:kind{chat/completions|completions}", async (c) => {
    const { body, headers } = await record(c);
    const model = String(body.model);
    const chat = c.req.path.endsWith("chat/completions");
    const id = `cmpl-${requests.length}`;
    const w = words(body);
    const usage = { prompt_tokens: w.length + 3, completion_tokens: w.length, total_tokens: 2 * w.length + 3 };

    if (model === "test-500") return c.json({ error: { message: "boom", type: "server_error", param: null, code: null } }, 500);
    if (model === "test-400") {
      return c.json(
        { error: { message: "too long", type: "invalid_request_error", param: "messages", code: "context_length_exceeded" } },
        400,
      );
    }
    if (model === "test-garbage") return c.text("<html>not json</html>", 200);
    if (model === "test-redirect") return c.body(null, 307, { location: "/_followed" });
    if (model === "test-big") return bigAnswer(id, model, chat, Number(body.max_tokens ?? 1000), w.join(" "), body.stream === true, cancelled);

    if (model === "test-hold" || model === "test-brief") {
      const tenant = headers["x-tenant-id"] ?? "";
      const n = inflight.get(tenant) ?? { current: 0, max: 0 };
      inflight.set(tenant, n);
      n.current++;
      n.max = Math.max(n.max, n.current);
      const done = () => void n.current--;
      const small = { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 };
      const wait = model === "test-hold"
        ? new Promise<void>((r) => holds.set(w.join(" "), [...(holds.get(w.join(" ")) ?? []), r]))
        : null;
      const enc = new TextEncoder();
      const line = (v: unknown) => enc.encode(`data: ${typeof v === "string" ? v : JSON.stringify(v)}\n\n`);
      const piece = (t: string) => ({ id, object: "chat.completion.chunk", created: 1, model, choices: [{ index: 0, delta: { content: t }, logprobs: null, finish_reason: null }] });
      if (body.stream !== true) {
        await wait;
        done();
        return c.json({ id, object: "chat.completion", created: 1, model, choices: [{ index: 0, message: { role: "assistant", content: "ok" }, logprobs: null, finish_reason: "stop" }], usage: small });
      }
      let closed = false;
      let keepalive: ReturnType<typeof setInterval> | undefined;
      return new Response(
        new ReadableStream<Uint8Array>({
          async start(ctl) {
            ctl.enqueue(line(piece("held ")));
            if (wait) {
              // A pod keeps a held stream alive, as the gateway counts a silent upstream as stuck.
              keepalive = setInterval(() => ctl.enqueue(enc.encode(": keepalive\n\n")), 200);
              await wait;
              clearInterval(keepalive);
            } else for (let i = 0; i < 4; i++) {
              await new Promise((r) => setTimeout(r, 20));
              if (closed) return;
              ctl.enqueue(line(piece(`w${i} `)));
            }
            if (closed) return;
            ctl.enqueue(line({ ...piece(""), choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }] }));
            ctl.enqueue(line({ id, object: "chat.completion.chunk", created: 1, model, choices: [], usage: small }));
            ctl.enqueue(line("[DONE]"));
            done();
            ctl.close();
          },
          cancel() {
            closed = true;
            clearInterval(keepalive);
            done();
            cancelled.push(id);
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    }

    const logprob = (i: number) => ({ token: i === 0 ? w[0] : ` ${w[i]}`, logprob: -(i + 1) / 8, bytes: null, top_logprobs: [] });
    const withLogprobs = chat && body.logprobs === true;
    const chunk = (piece: string | null, finish: string | null, word?: number) => ({
      id,
      object: chat ? "chat.completion.chunk" : "text_completion",
      created: 1,
      model,
      choices: [
        chat
          ? { index: 0, delta: piece === null ? {} : { content: piece }, logprobs: withLogprobs && word !== undefined ? { content: [logprob(word)] } : null, finish_reason: finish }
          : { index: 0, text: piece ?? "", logprobs: null, finish_reason: finish },
      ],
      ...((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage ? { usage: null } : {}),
    });

    // test-late: silent for the first word's milliseconds (before its answer, or after a stream's first word).
    const lateMs = model === "test-late" ? Number(w[0]) || 0 : 0;
    if (body.stream !== true) {
      if (lateMs) await new Promise((r) => setTimeout(r, lateMs));
      const text = w.join(" ");
      return c.json({
        id,
        object: chat ? "chat.completion" : "text_completion",
        created: 1,
        model,
        choices: [
          chat
            ? { index: 0, message: { role: "assistant", content: text }, logprobs: withLogprobs ? { content: w.map((_, i) => logprob(i)) } : null, finish_reason: "stop" }
            : { index: 0, text, logprobs: null, finish_reason: "stop" },
        ],
        usage,
      });
    }

    const enc = new TextEncoder();
    const send = (ctl: ReadableStreamDefaultController<Uint8Array>, v: unknown) =>
      ctl.enqueue(enc.encode(`data: ${typeof v === "string" ? v : JSON.stringify(v)}\n\n`));
    const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    let timer: ReturnType<typeof setInterval> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      async start(ctl) {
        if (model === "test-slow") {
          let i = 0;
          timer = setInterval(() => send(ctl, chunk(`w${i++} `, null)), 20);
          return;
        }
        if (model === "test-cut") {
          send(ctl, chunk("one ", null));
          send(ctl, chunk("two ", null));
          setTimeout(() => ctl.error(new Error("connection dropped")), 10);
          return;
        }
        if (chat) send(ctl, { ...chunk(null, null), choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }] });
        for (const [i, word] of w.entries()) {
          if (i === 1 && lateMs) await new Promise((r) => setTimeout(r, lateMs));
          send(ctl, chunk(i === 0 ? word : ` ${word}`, null, i));
        }
        send(ctl, chunk(null, "stop"));
        if (includeUsage) send(ctl, { id, object: chat ? "chat.completion.chunk" : "text_completion", created: 1, model, choices: [], usage });
        send(ctl, "[DONE]");
        ctl.close();
      },
      cancel() {
        clearInterval(timer);
        cancelled.push(id);
      },
    });
    return new Response(stream, { headers: { "content-type": "text/event-stream" } });
  });

  const server = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" });
  await new Promise<void>((r) => server.once("listening", () => r()));
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    cancelled,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
