import { Hono, type Context } from "hono";
import type { z } from "zod";
import { modelAllowed } from "../../../src/auth/key-policy.js";
import type { CatalogEntry } from "../../../src/config/catalog.js";
import { SSE_HEADERS, rewriteSse } from "../../../src/http/sse.js";
import { readValidBody } from "../../../src/http/request-body.js";
import { estimatePromptTokens, estimateReservation } from "../../../src/limits/limits.js";
import { costMicros, countsOf, type TokenCounts } from "../../../src/metering/pricing.js";
import type { UsageRecord } from "../../../src/metering/usage-record.js";
import { ChatCompletionRequestSchema } from "../../../src/openai/chat.js";
import { CompletionRequestSchema } from "../../../src/openai/completions.js";
import { ApiError, ErrorBodySchema, errors } from "../../../src/openai/errors.js";
import { openAiStreamTap, type StreamOutcome } from "../../../src/openai/stream-tap.js";
import { UsageSchema } from "../../../src/openai/usage.js";
import type { AppEnv } from "../env.js";
import { admit, type LimitTicket } from "../limits/enforce.js";
import { reportFailure, reportSuccess } from "../routing/health-view.js";
import { chooseTargets } from "../routing/router.js";
import { forward, type Forwarded } from "../upstream/forward.js";

/** `POST /v1/chat/completions` and `POST /v1/completions`: validate, authorise, limit, route, stream back. */
export const inference = new Hono<AppEnv>();

inference.post("/chat/completions", (c) => proxy(c, ChatCompletionRequestSchema, "/v1/chat/completions"));
inference.post("/completions", (c) => proxy(c, CompletionRequestSchema, "/v1/completions"));

type InferenceSchema = typeof ChatCompletionRequestSchema | typeof CompletionRequestSchema;
type InferenceRequest = z.infer<InferenceSchema>;

async function proxy(c: Context<AppEnv>, schema: InferenceSchema, path: string): Promise<Response> {
  const settings = c.get("settings");
  const auth = c.get("auth");
  const { raw, parsed } = await readValidBody(c.req.raw, settings.maxBodyBytes, schema);
  const model = (parsed as InferenceRequest).model;
  const entry = settings.catalog.find((m) => m.id === model);
  if (!entry || !modelAllowed(auth, model)) throw errors.modelNotFound(model);

  const prompt = "messages" in raw ? raw.messages : raw.prompt;
  const promptBytes = new TextEncoder().encode(JSON.stringify(prompt)).length;
  const ticket = await admit(c, estimateReservation(promptBytes, completionBudget(parsed as InferenceRequest, entry)));
  try {
    return await serve(c, entry, raw, parsed as InferenceRequest, path, ticket, promptBytes);
  } catch (e) {
    if (ticket) c.executionCtx.waitUntil(ticket.settle(0)); // nothing reached a model
    if (e instanceof ApiError && ticket) Object.assign(e.headers, ticket.headers);
    throw e;
  }
}

/** The completion tokens a request may use: max_tokens (or the model's default) for each of its n choices. */
function completionBudget(r: InferenceRequest, entry: CatalogEntry): number {
  const max = ("max_completion_tokens" in r ? (r.max_completion_tokens as number | null | undefined) : null) ?? r.max_tokens ?? entry.default_max_tokens;
  return max * (r.n ?? 1);
}

async function serve(
  c: Context<AppEnv>,
  entry: CatalogEntry,
  raw: Record<string, unknown>,
  parsed: InferenceRequest,
  path: string,
  ticket: LimitTicket | null,
  promptBytes: number,
): Promise<Response> {
  const settings = c.get("settings");
  const auth = c.get("auth");
  const stream = parsed.stream === true;
  const clientWantsUsage = stream && parsed.stream_options?.include_usage === true;
  // The edge always asks for usage so every stream can be metered; the tap hides it from clients that did not ask.
  const upstreamBody = stream
    ? { ...raw, model: entry.upstream_model ?? entry.id, stream_options: { ...(raw.stream_options as object), include_usage: true } }
    : { ...raw, model: entry.upstream_model ?? entry.id };

  const started = Date.now();
  const targets = await chooseTargets(c, entry, "messages" in raw ? raw.messages : raw.prompt, auth.tenantId);
  const waitUntil = (p: Promise<unknown>) => c.executionCtx.waitUntil(p);
  const takeOut = (t: Forwarded["target"]) => {
    if (t.podId && t.region) reportFailure(c.env, t.region, t.podId, settings.healthSnapshotMs * 3, waitUntil);
  };
  const { response, target, attempts } = await forward({
    path,
    body: new TextEncoder().encode(JSON.stringify(upstreamBody)),
    model: entry.id,
    targets,
    requestId: c.get("requestId"),
    tenantId: auth.tenantId,
    ...(c.env.POD_SHARED_SECRET ? { podSecret: c.env.POD_SHARED_SECRET } : {}),
    ...(entry.upstream_api_key ? { upstreamApiKey: entry.upstream_api_key } : {}),
    signal: c.req.raw.signal,
    timeoutMs: settings.upstreamTimeoutMs,
    maxAttempts: settings.upstreamMaxAttempts,
    deadlineMs: settings.upstreamDeadlineMs,
    onFailure: takeOut,
    onSuccess: (t) => t.podId && reportSuccess(t.podId),
  });
  const headers: Record<string, string> = {
    ...(target.podId ? { "x-backend-pod": target.podId, "x-backend-region": target.region! } : {}),
    ...ticket?.headers,
  };

  /**
   * Ends the request's bookkeeping: limits settle to what it really used, the usage record goes to the metering
   * queue, the access record is logged. Without the backend's usage (a cancelled or broken stream) the record
   * carries the edge's estimate: the prompt, and one token per delivered chunk.
   */
  const finish = (outcome: StreamOutcome): Promise<unknown> => {
    const counts: TokenCounts = outcome.usage ? countsOf(outcome.usage) : { prompt: estimatePromptTokens(promptBytes), cached: 0, completion: outcome.chunks };
    const used = counts.prompt + counts.completion;
    const record: UsageRecord = {
      event_id: c.get("requestId"),
      tenant_id: auth.tenantId,
      key_id: auth.keyId,
      model: entry.id,
      region: target.region,
      pod: target.podId,
      status: outcome.status,
      stream,
      prompt_tokens: counts.prompt,
      cached_tokens: counts.cached,
      completion_tokens: counts.completion,
      estimated: !outcome.usage,
      cost_micros: costMicros(counts, entry.pricing),
      started_at: Math.floor(started / 1000),
      ended_at: Math.floor(Date.now() / 1000),
    };
    const settled = ticket?.settle(used) ?? Promise.resolve();
    const metered = c.env.USAGE_QUEUE.send(record).catch((e: unknown) => console.error(JSON.stringify({ msg: "usage record not queued", request_id: record.event_id, error: String(e) })));
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
    return Promise.all([settled, metered]);
  };

  if (!response.ok) return upstreamErrorResponse(response, entry.id);
  const publicModel = entry.upstream_model ? entry.id : undefined;

  if (stream) {
    if (!response.body || !response.headers.get("content-type")?.includes("text/event-stream")) {
      await response.body?.cancel();
      throw errors.upstreamError(`The backend for model '${entry.id}' did not answer with an event stream.`);
    }
    let settle!: (o: StreamOutcome) => void;
    waitUntil(
      new Promise<StreamOutcome>((r) => (settle = r)).then((o) => {
        // A backend that dies mid-stream is out of rotation for the next requests.
        if (o.status === "failed") takeOut(target);
        return finish(o);
      }),
    );
    const body = rewriteSse(response.body, openAiStreamTap({ clientWantsUsage, ...(publicModel ? { publicModel } : {}), onFinish: settle }), c.req.raw.signal);
    return new Response(body, { status: 200, headers: { ...SSE_HEADERS, ...headers } });
  }

  const text = await response.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw errors.upstreamError(`The backend for model '${entry.id}' answered with malformed JSON.`);
  }
  const usage = UsageSchema.safeParse(json.usage);
  waitUntil(finish({ status: "completed", usage: usage.success ? usage.data : null, chunks: 1 }));
  if (publicModel) json.model = publicModel;
  return new Response(publicModel ? JSON.stringify(json) : text, {
    status: response.status,
    headers: { "content-type": "application/json", ...headers },
  });
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
