import { Hono, type Context } from "hono";
import type { z } from "zod";
import { modelAllowed } from "../../../src/auth/key-policy.js";
import { replayAsJson, replayAsStream, type CachedAnswer } from "../../../src/cache/completion-replay.js";
import { isDeterministic, responseCacheKey, wantsLogprobs } from "../../../src/cache/response-key.js";
import type { CatalogEntry } from "../../../src/config/catalog.js";
import { SSE_HEADERS } from "../../../src/http/sse.js";
import { readValidBody } from "../../../src/http/request-body.js";
import { estimateReservation } from "../../../src/limits/limits.js";
import { countsOf } from "../../../src/metering/pricing.js";
import { ChatCompletionRequestSchema } from "../../../src/openai/chat.js";
import { CompletionRequestSchema, promptList, type CompletionRequest } from "../../../src/openai/completions.js";
import { ApiError, errors } from "../../../src/openai/errors.js";
import { lead, lookup, pending, store } from "../cache/response-cache.js";
import type { AppEnv } from "../env.js";
import { admit, type LimitTicket } from "../limits/enforce.js";
import { meter } from "../metering/record.js";
import { serveFromBackend } from "../upstream/serve-backend.js";

/**
 * `POST /v1/chat/completions` and `POST /v1/completions`: validate, authorise the model, admit against the
 * tenant's limits, answer deterministic repeats from the edge cache, otherwise route to a backend and stream back.
 */
export const inference = new Hono<AppEnv>();

inference.post("/chat/completions", (c) => proxy(c, ChatCompletionRequestSchema, "/v1/chat/completions"));
inference.post("/completions", (c) => proxy(c, CompletionRequestSchema, "/v1/completions"));

type InferenceSchema = typeof ChatCompletionRequestSchema | typeof CompletionRequestSchema;
export type InferenceRequest = z.infer<InferenceSchema>;

async function proxy(c: Context<AppEnv>, schema: InferenceSchema, path: string): Promise<Response> {
  const settings = c.get("settings");
  const auth = c.get("auth");
  const { raw, parsed } = await readValidBody(c.req.raw, settings.maxBodyBytes, schema);
  const model = (parsed as InferenceRequest).model;
  const entry = settings.catalog.find((m) => m.id === model);
  if (!entry || !modelAllowed(auth, model)) throw errors.modelNotFound(model);

  const prompt = "messages" in raw ? raw.messages : raw.prompt;
  const promptBytes = new TextEncoder().encode(JSON.stringify(prompt)).length;
  // Every choice may use the whole completion budget: n per prompt, and a completion request may bring many prompts.
  const prompts = schema === CompletionRequestSchema ? promptList((parsed as CompletionRequest).prompt).length : 1;
  const ticket = await admit(c, estimateReservation(promptBytes, prompts * completionBudget(parsed as InferenceRequest, entry)));
  let settleCache: ((a: CachedAnswer | null) => void) | null = null;
  const release = () => {
    settleCache?.(null);
    settleCache = null;
    if (ticket) c.executionCtx.waitUntil(ticket.settle(0)); // nothing reached a model
  };
  // A client that leaves tears the handler down: workerd cancels whatever it awaits, so no catch or finally
  // below runs then, only the abort event. Until a response is returned, that event closes the books: the
  // limits' hold is released, or, once a backend has the request, serveFromBackend meters it instead.
  const books = { close: release };
  const gone = () => books.close();
  const signal = c.req.raw.signal;
  signal.addEventListener("abort", gone, { once: true });
  try {
    const plan = await cachePlan(c, raw, path);
    if (plan.read) {
      const hit = (await lookup(plan.key)) ?? (await pending(plan.key));
      if (hit) return serveHit(c, entry, hit, parsed as InferenceRequest, ticket);
    }
    if (plan.write) settleCache = lead(plan.key);
    const ttl = plan.ttl;
    const onAnswer = (a: CachedAnswer | null) => {
      settleCache?.(a);
      settleCache = null;
      if (a && plan.write) c.executionCtx.waitUntil(store(plan.key, a, ttl));
    };
    return await serveFromBackend(c, { entry, raw, prompt, parsed: parsed as InferenceRequest, path, ticket, promptBytes, cacheStatus: plan.read || plan.write ? "MISS" : "BYPASS", onAnswer, books });
  } catch (e) {
    release();
    if (e instanceof ApiError && ticket) Object.assign(e.headers, ticket.headers);
    throw e;
  } finally {
    signal.removeEventListener("abort", gone);
  }
}

/** The completion tokens a request may use: max_tokens (or the model's default) for each of its n choices. */
function completionBudget(r: InferenceRequest, entry: CatalogEntry): number {
  const max = ("max_completion_tokens" in r ? (r.max_completion_tokens as number | null | undefined) : null) ?? r.max_tokens ?? entry.default_max_tokens;
  return max * (r.n ?? 1);
}

/** Whether this request may be answered from, and stored in, the edge cache. */
async function cachePlan(c: Context<AppEnv>, raw: Record<string, unknown>, path: string): Promise<{ read: boolean; write: boolean; key: string; ttl: number }> {
  const settings = c.get("auth").responseCache;
  const directives = (c.req.header("cache-control") ?? "").toLowerCase();
  const noStore = directives.includes("no-store");
  // A stream's cache entry keeps its text only and a replayed stream carries no logprobs, so a request for
  // logprobs uses the cache only as JSON, whose entry keeps them whole.
  const logprobsLost = raw.stream === true && wantsLogprobs(raw);
  const usable = settings.enabled && isDeterministic(raw) && !noStore && !logprobsLost;
  if (!usable) return { read: false, write: false, key: "", ttl: 0 };
  return { read: !directives.includes("no-cache"), write: true, key: await responseCacheKey(c.get("auth").tenantId, path, raw), ttl: settings.ttl_seconds };
}

/** A cache hit: replayed as JSON or as a stream, metered as a cache hit, costing no GPU tokens. */
function serveHit(c: Context<AppEnv>, entry: CatalogEntry, hit: CachedAnswer, parsed: InferenceRequest, ticket: LimitTicket | null): Response {
  const started = Date.now();
  const counts = hit.response.usage ? countsOf(hit.response.usage) : { prompt: 0, cached: 0, completion: 0 };
  const id = `${hit.kind === "chat" ? "chatcmpl" : "cmpl"}-${c.get("requestId").slice(4)}`;
  c.executionCtx.waitUntil(
    Promise.all([
      ticket?.settle(0),
      meter(c, entry, { status: "cache_hit", stream: parsed.stream === true, counts: { ...counts, cached: counts.prompt }, estimated: false, region: null, pod: null, startedMs: started }),
    ]),
  );
  const headers = { "x-cache": "HIT", ...ticket?.headers };
  if (parsed.stream === true) {
    const body = replayAsStream(hit, id, parsed.stream_options?.include_usage === true);
    return new Response(body, { headers: { ...SSE_HEADERS, ...headers } });
  }
  return new Response(JSON.stringify(replayAsJson(hit, id)), { headers: { "content-type": "application/json", ...headers } });
}
