import type { Context } from "hono";
import { StreamAssembler, type CachedAnswer } from "../../../src/cache/completion-replay.js";
import type { CatalogEntry } from "../../../src/config/catalog.js";
import { SSE_HEADERS, rewriteSse } from "../../../src/http/sse.js";
import { estimatePromptTokens } from "../../../src/limits/limits.js";
import { countsOf, type TokenCounts } from "../../../src/metering/pricing.js";
import { ApiError, ErrorBodySchema, errors } from "../../../src/openai/errors.js";
import { openAiStreamTap, type StreamOutcome } from "../../../src/openai/stream-tap.js";
import { UsageSchema } from "../../../src/openai/usage.js";
import type { AppEnv } from "../env.js";
import type { LimitTicket } from "../limits/enforce.js";
import { meter } from "../metering/record.js";
import { reportFailure, reportSuccess } from "../routing/health-view.js";
import { chooseTargets } from "../routing/router.js";
import type { InferenceRequest } from "../routes/inference.js";
import { forward, type Forwarded } from "./forward.js";
import { passThroughAnswer, readUpTo, type BodyHead } from "./unbuffered-answer.js";

export interface BackendCall {
  entry: CatalogEntry;
  raw: Record<string, unknown>;
  /** `messages` or `prompt` as sent (routing hashes its start for prefix affinity). */
  prompt: unknown;
  parsed: InferenceRequest;
  path: string;
  ticket: LimitTicket | null;
  promptBytes: number;
  cacheStatus: "MISS" | "BYPASS";
  /** The complete answer (for the edge cache), or null when there is none to keep. */
  onAnswer(answer: CachedAnswer | null): void;
  /** What the client's leaving does until a response is returned; replaced here once a backend has the request. */
  books: { close(): void };
}

/**
 * Routes a request to a backend (failover before the first byte), streams or returns its answer, and closes
 * the books when it ends: limits settle to real usage, a usage record is metered, the access record is logged.
 */
export async function serveFromBackend(c: Context<AppEnv>, call: BackendCall): Promise<Response> {
  const { entry, raw, parsed, path, ticket } = call;
  const settings = c.get("settings");
  const auth = c.get("auth");
  const stream = parsed.stream === true;
  const clientWantsUsage = stream && parsed.stream_options?.include_usage === true;
  // The edge always asks for usage so every stream can be metered; the tap hides it from clients that did not ask.
  const upstreamBody = stream
    ? { ...raw, model: entry.upstream_model ?? entry.id, stream_options: { ...(raw.stream_options as object), include_usage: true } }
    : { ...raw, model: entry.upstream_model ?? entry.id };

  const started = Date.now();
  const timeoutMs = entry.upstream_timeout_ms ?? settings.upstreamTimeoutMs;
  const idleMs = entry.upstream_idle_timeout_ms ?? settings.upstreamIdleTimeoutMs;
  const targets = await chooseTargets(c, entry, call.prompt, auth.tenantId);
  const waitUntil = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  const takeOut = (t: Forwarded["target"]) => {
    if (t.podId && t.region) reportFailure(c.env, t.region, t.podId, settings.healthSnapshotMs * 3, waitUntil);
  };
  /**
   * Closes the books. Without the backend's usage (a cancelled or broken stream) the record carries the edge's
   * estimate: the prompt, and one token per delivered chunk.
   */
  const finish = (outcome: StreamOutcome): Promise<unknown> => {
    const counts: TokenCounts = outcome.usage ? countsOf(outcome.usage) : { prompt: estimatePromptTokens(call.promptBytes), cached: 0, completion: outcome.chunks };
    console.log(
      JSON.stringify({
        msg: "completion",
        request_id: c.get("requestId"),
        tenant_id: auth.tenantId,
        key_id: auth.keyId,
        model: entry.id,
        upstream: target.podId ?? target.url,
        attempts,
        stream,
        status: outcome.status,
        usage: outcome.usage,
        delivered_chunks: outcome.chunks,
        duration_ms: Date.now() - started,
      }),
    );
    return Promise.all([
      ticket?.settle(counts.prompt + counts.completion),
      meter(c, entry, { status: outcome.status, stream, counts, estimated: !outcome.usage, region: target.region, pod: target.podId, startedMs: started }),
    ]);
  };

  const spec = {
    path,
    body: new TextEncoder().encode(JSON.stringify(upstreamBody)),
    model: entry.id,
    requestId: c.get("requestId"),
    tenantId: auth.tenantId,
    ...(c.env.POD_SHARED_SECRET ? { podSecret: c.env.POD_SHARED_SECRET } : {}),
    ...(entry.upstream_api_key ? { upstreamApiKey: entry.upstream_api_key } : {}),
    signal: c.req.raw.signal,
    timeoutMs,
    // A model allowed a longer first byte is allowed it for one attempt at least.
    deadlineMs: Math.max(settings.upstreamDeadlineMs, timeoutMs),
    onFailure: takeOut,
    onSuccess: (t: Forwarded["target"]) => t.podId && reportSuccess(t.podId),
  };
  let target!: Forwarded["target"];
  let attempts = 0;
  let response!: Response;
  // Set for a non-streaming answer: its body, read whole (up to the buffer bound) before the client sees a byte.
  let body: BodyHead | null = null;
  let brokeOff: unknown = null;
  // A non-streaming answer's body is read before anything reaches the client, so a backend that breaks off in
  // the middle (crashed, or silent past the idle limit) can be replaced like one that failed before its head.
  for (let pool = targets; ; ) {
    const sent = await forward({ ...spec, targets: pool, maxAttempts: settings.upstreamMaxAttempts - attempts });
    ({ response, target } = sent);
    attempts += sent.attempts;
    call.books.close = () => {
      call.onAnswer(null);
      waitUntil(finish({ status: "cancelled", usage: null, chunks: 0 }));
    };
    if (stream || !response.ok) break;
    try {
      body = await readUpTo(response.body, settings.maxBufferedAnswerBytes, idleMs, c.req.raw.signal);
      break;
    } catch (e) {
      // The client left: its books were closed as it did.
      if (c.req.raw.signal.aborted) throw new ApiError(499, "Client closed the request.", { code: "client_closed_request" });
      takeOut(target);
      const rest = pool.slice(pool.indexOf(target) + 1);
      if (rest.length === 0 || attempts >= settings.upstreamMaxAttempts) {
        brokeOff = e;
        break;
      }
      console.error(JSON.stringify({ msg: "backend broke off an answer; trying the next", request_id: c.get("requestId"), upstream: target.podId ?? target.url, error: String(e) }));
      pool = rest;
    }
  }
  const headers: Record<string, string> = {
    "x-cache": call.cacheStatus,
    ...(target.podId ? { "x-backend-pod": target.podId, "x-backend-region": target.region! } : {}),
    ...ticket?.headers,
  };

  if (!response.ok) {
    call.onAnswer(null);
    return upstreamErrorResponse(response, entry.id);
  }
  const publicModel = entry.upstream_model ? entry.id : undefined;

  if (stream) {
    if (!response.body || !response.headers.get("content-type")?.includes("text/event-stream")) {
      await response.body?.cancel();
      throw errors.upstreamError(`The backend for model '${entry.id}' did not answer with an event stream.`);
    }
    const kind = path.endsWith("chat/completions") ? "chat" : "completion";
    const assembler = new StreamAssembler(kind);
    let settle!: (o: StreamOutcome) => void;
    waitUntil(
      new Promise<StreamOutcome>((r) => (settle = r)).then((o) => {
        // A backend that dies mid-stream is out of rotation for the next requests.
        if (o.status === "failed") takeOut(target);
        call.onAnswer(o.status === "completed" ? assembler.answer() : null);
        return finish(o);
      }),
    );
    const tap = openAiStreamTap({ clientWantsUsage, ...(publicModel ? { publicModel } : {}), onChunk: (ch) => assembler.add(ch), onFinish: settle });
    return new Response(rewriteSse(response.body, tap, c.req.raw.signal, idleMs), { status: 200, headers: { ...SSE_HEADERS, ...headers } });
  }

  if (!body) {
    // Every backend tried broke off. The last one's work is metered (as an estimate).
    call.onAnswer(null);
    waitUntil(finish({ status: "failed", usage: null, chunks: 0, error: String(brokeOff) }));
    throw errors.upstreamError(`The backend for model '${entry.id}' broke off its answer.`);
  }
  if ("head" in body) {
    // Too large to parse here: passed through as it comes, metered from its usage, not cached.
    call.onAnswer(null);
    let settle!: (o: StreamOutcome) => void;
    const outcome = new Promise<StreamOutcome>((r) => (settle = r));
    const passed = passThroughAnswer(body.head, body.reader, { ...(publicModel ? { publicModel } : {}), signal: c.req.raw.signal, idleMs, onFinish: settle });
    if (!passed) throw errors.upstreamError(`The backend for model '${entry.id}' answered with malformed JSON.`);
    waitUntil(
      outcome.then((o) => {
        if (o.status === "failed") takeOut(target);
        return finish(o);
      }),
    );
    return new Response(passed, { status: response.status, headers: { "content-type": "application/json", ...headers } });
  }
  // Trimmed: a pod sends spaces ahead of an answer while it generates.
  const text = new TextDecoder().decode(body.whole).trim();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    call.onAnswer(null);
    throw errors.upstreamError(`The backend for model '${entry.id}' answered with malformed JSON.`);
  }
  const failed = ErrorBodySchema.safeParse(json);
  if (failed.success) {
    // The generation failed after the pod had sent its head (so with a 200): its error, as a bad gateway.
    waitUntil(finish({ status: "failed", usage: null, chunks: 0, error: failed.data.error.message }));
    call.onAnswer(null);
    throw new ApiError(502, failed.data.error.message, { type: "server_error", code: failed.data.error.code ?? "upstream_error" });
  }
  const usage = UsageSchema.safeParse(json.usage);
  waitUntil(finish({ status: "completed", usage: usage.success ? usage.data : null, chunks: 1 }));
  if (publicModel) json.model = publicModel;
  call.onAnswer(usage.success ? { kind: json.object === "chat.completion" ? "chat" : "completion", response: json as unknown as CachedAnswer["response"], deltas: {} } : null);
  return new Response(publicModel ? JSON.stringify(json) : text, { status: response.status, headers: { "content-type": "application/json", ...headers } });
}

/**
 * A 4xx from the backend is about the request (context too long, bad parameter): pass it on as the backend
 * worded it. Credentials problems between edge and backend are ours, not the client's: those become 502.
 */
async function upstreamErrorResponse(response: Response, model: string): Promise<Response> {
  const text = await response.text().catch(() => "");
  if (response.status === 401 || response.status === 403) {
    throw errors.upstreamError(`The backend for model '${model}' refused the gateway's credentials.`);
  }
  let parsed: ReturnType<typeof ErrorBodySchema.safeParse> | undefined;
  try {
    parsed = ErrorBodySchema.safeParse(JSON.parse(text));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) {
    throw errors.upstreamError(`The backend for model '${model}' answered HTTP ${response.status} without an OpenAI error body.`);
  }
  const headers: Record<string, string> = {};
  for (const h of ["retry-after", "retry-after-ms"]) {
    const v = response.headers.get(h);
    if (v) headers[h] = v;
  }
  throw new ApiError(response.status, parsed.data.error.message, {
    type: parsed.data.error.type as ApiError["type"],
    param: parsed.data.error.param,
    code: parsed.data.error.code,
    headers,
  });
}
