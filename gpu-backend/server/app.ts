import { Hono, type Context } from "hono";
import { SSE_DONE, SSE_HEADERS, SSE_KEEPALIVE, sseJson } from "../../src/http/sse.js";
import { verifyEdgeRequest } from "../../src/auth/edge-signature.js";
import { parseJsonBody } from "../../src/http/json-body.js";
import { checkContentType, readBodyBytes } from "../../src/http/request-body.js";
import { validateBody } from "../../src/openai/validate.js";
import { TtlCache } from "../../src/cache/ttl-cache.js";
import { ChatCompletionRequestSchema } from "../../src/openai/chat.js";
import { CompletionRequestSchema } from "../../src/openai/completions.js";
import { ApiError, errorBody, errors } from "../../src/openai/errors.js";
import type { DeepSeekModel } from "../engine/model.js";
import { isMoeLayer } from "../engine/config.js";
import type { TextCodec } from "../engine/tokenizer.js";
import type { Encode, EncodeChat } from "../text/off-thread-encoder.js";
import { chainSeed } from "../kv/block-pool.js";
import type { Scheduler } from "../scheduler/scheduler.js";
import type { Sampled } from "../sampling/sampler.js";
import { ChoiceFormatter } from "./choice-format.js";
import { Generation } from "./generation.js";
import { heldJsonResponse } from "./json-response.js";
import { expertMetrics, PodMetrics, processMetrics, prometheus, single, type GenerationOutcome } from "./metrics.js";
import { planChat, planCompletion, type GenerationPlan } from "./prompts.js";

/** The app is installed once the model is loaded (see listener.ts); `draining` is set on SIGTERM. */
export interface PodState {
  draining: boolean;
}

export interface PodDeps {
  model: DeepSeekModel;
  codec: TextCodec;
  /** The codec's encode and encodeChat, off the event loop for large inputs (see OffThreadEncoder). */
  encode: Encode;
  encodeChat: EncodeChat;
  scheduler: Scheduler;
  modelId: string;
  podId: string;
  metrics: PodMetrics;
  state: PodState;
  maxBodyBytes: number;
  /** Sequences that may wait for admission (see `overloaded`). */
  maxWaiting: number;
  /** Shared with the edge (the current one, and the previous during a rotation); when any, every /v1 request must carry a valid edge signature. */
  edgeSecrets: readonly string[];
  /** Bytes of a stream its client may leave unread before it is cancelled (default 64 MiB). */
  maxUnreadBytes?: number;
  /** How often an answer in the making sends a keepalive (default 5 s; see PodOptionsSchema). */
  keepaliveMs?: number;
}

/** The pod's HTTP surface: OpenAI-compatible `/v1/*` plus `/health`, `/load` and `/metrics`. */
export function createPodApp(d: PodDeps): Hono {
  const app = new Hono();
  const contextLimit = () => d.scheduler.maxSequenceTokens;
  const cfg = d.model.config;
  const moeLayers = Array.from({ length: cfg.layers }, (_, l) => l).filter((l) => isMoeLayer(cfg, l));
  const keepaliveMs = d.keepaliveMs ?? 5_000;
  /** Request ids seen within the replay window: a captured signed request cannot be played again. */
  const seen = new TtlCache<string, true>(100_000);

  /** Reads the body once, checks the edge's signature over it, then parses and validates it. */
  async function authenticBody(c: Context): Promise<Uint8Array> {
    const bytes = await readBodyBytes(c.req.raw, d.maxBodyBytes);
    if (d.edgeSecrets.length > 0) {
      const path = new URL(c.req.url).pathname;
      const v = await verifyEdgeRequest(d.edgeSecrets, { method: c.req.method, path, headers: c.req.raw.headers, body: bytes }, Math.floor(Date.now() / 1000));
      const id = c.req.header("x-request-id") ?? "";
      if (!v.ok || seen.get(id, Date.now())) {
        throw new ApiError(401, `This pod accepts only requests signed by the edge (${v.ok ? "replayed request" : v.reason}).`, {
          code: "invalid_edge_signature",
        });
      }
      seen.set(id, true, 2 * 60_000, Date.now());
    }
    return bytes;
  }

  app.use("/v1/*", async (c, next) => {
    // GETs carry no body but are signed all the same.
    if (d.edgeSecrets.length > 0 && c.req.method === "GET") await authenticBody(c);
    await next();
  });

  app.onError((err, c) => {
    if (err instanceof ApiError) return c.json(err.toBody(), err.status as 400, err.headers);
    console.error(JSON.stringify({ msg: "pod error", error: String(err), stack: (err as Error).stack }));
    return c.json(errors.internal().toBody(), 500);
  });
  app.notFound((c) => c.json(errors.unknownRoute(c.req.method, c.req.path).toBody(), 404));

  // Liveness: the process answers. Stays 200 while draining, so the kubelet never kills a drain midway.
  app.get("/livez", (c) => c.json({ status: "alive", pod: d.podId }));

  // Readiness: route traffic here only while not draining (before the model is loaded, loadingApp answers).
  app.get("/health", (c) => {
    if (d.state.draining) return c.json({ status: "draining", pod: d.podId }, 503);
    return c.json({ status: "ok", pod: d.podId, model: d.modelId });
  });

  app.get("/load", (c) => {
    const s = d.scheduler.stats();
    return c.json({
      pod: d.podId,
      model: d.modelId,
      draining: d.state.draining,
      waiting: s.waiting,
      running: s.running,
      active_requests: d.metrics.activeRequests,
      kv_blocks: s.blocks,
      tokens_per_s: +d.metrics.tokensPerSecond().toFixed(2),
      totals: { prompt_tokens: s.promptTokens, generated_tokens: s.generatedTokens, cached_prompt_tokens: s.cachedTokens, preemptions: s.preemptions, steps: s.steps },
      experts: d.model.experts.describe(),
      expert_tokens: moeLayers.map((layer) => ({ layer, tokens: Array.from(d.model.expertLoad[layer]!) })),
    });
  });

  app.get("/metrics", (c) => {
    const s = d.scheduler.stats();
    const text = prometheus([
      single("pod_requests_waiting", "Sequences waiting for admission (the autoscaling signal).", "gauge", s.waiting),
      single("pod_requests_running", "Sequences being generated.", "gauge", s.running),
      { name: "pod_kv_blocks", help: "KV cache blocks by state.", type: "gauge", samples: [
        { labels: { state: "used" }, value: s.blocks.used },
        { labels: { state: "free" }, value: s.blocks.free },
        { labels: { state: "cached" }, value: s.blocks.cached },
      ] },
      single("pod_prompt_tokens_total", "Prompt tokens admitted.", "counter", s.promptTokens),
      single("pod_prompt_cached_tokens_total", "Prompt tokens served from the prefix cache.", "counter", s.cachedTokens),
      single("pod_generated_tokens_total", "Tokens sampled.", "counter", s.generatedTokens),
      single("pod_preemptions_total", "Sequences preempted for lack of KV blocks.", "counter", s.preemptions),
      { name: "pod_http_requests_total", help: "HTTP requests by route and status.", type: "counter", samples: [...d.metrics.requests].map(([k, v]) => {
        const [route, status] = k.split("|");
        return { labels: { route: route!, status: status! }, value: v };
      }) },
      { name: "pod_generations_total", help: "Generations by how they ended (the HTTP status is sent before the end).", type: "counter", samples: [...d.metrics.generations].map(([outcome, v]) => ({ labels: { outcome }, value: v })) },
      ...d.metrics.latencyFamilies(),
      ...expertMetrics(d.model.expertLoad, moeLayers),
      ...processMetrics(),
    ]);
    return c.text(text, 200, { "content-type": "text/plain; version=0.0.4" });
  });

  const modelObject = () => ({ id: d.modelId, object: "model" as const, created: 0, owned_by: "moe-edge", max_model_len: contextLimit() });
  app.get("/v1/models", (c) => c.json({ object: "list", data: [modelObject()] }));
  app.get("/v1/models/:id{.+}", (c) => {
    if (c.req.param("id") !== d.modelId) throw errors.modelNotFound(c.req.param("id"));
    return c.json(modelObject());
  });

  // Every answer of the generation routes is counted by status, refusals and failures included (onError has
  // set the response by the time `next` returns).
  for (const route of ["/v1/chat/completions", "/v1/completions"]) {
    app.post(route, async (c, next) => {
      await next();
      d.metrics.countRequest(route, c.res.status);
    });
  }
  app.post("/v1/chat/completions", (c) => handle(c, "chat"));
  app.post("/v1/completions", (c) => handle(c, "completion"));

  /** Reads, checks and validates a generation request, then tokenizes it into a plan. */
  async function admit(c: Context, kind: "chat" | "completion") {
    const bytes = await authenticBody(c);
    checkContentType(c.req.header("content-type") ?? null);
    const json = parseJsonBody(bytes);
    const parsed = kind === "chat" ? validateBody(ChatCompletionRequestSchema, json) : validateBody(CompletionRequestSchema, json);
    if (parsed.model !== d.modelId) throw errors.modelNotFound(parsed.model);
    const vocab = d.model.config.vocabSize;
    const plan: GenerationPlan = kind === "chat"
      ? await planChat(parsed as never, d.codec, d.encodeChat, vocab, contextLimit())
      : await planCompletion(parsed as never, d.codec, d.encode, vocab, contextLimit());
    return { parsed, plan };
  }

  /**
   * Whether `choices` more sequences of `tenant` would overfill the admission queue: a full queue only adds
   * latency and memory, and another pod may have room. Past `maxWaiting`, a tenant with nothing queued still
   * gets in (one tenant's flood must not lock the others out), up to twice the bound. An empty queue takes any
   * request.
   */
  const overloaded = (tenant: string, choices: number) => {
    const waiting = d.scheduler.waiting;
    if (waiting === 0 || waiting + choices <= d.maxWaiting) return false;
    return d.scheduler.waitingFor(tenant) > 0 || waiting + choices > 2 * d.maxWaiting;
  };

  const overloadedError = () =>
    new ApiError(503, `This pod's queue is full (${d.maxWaiting} sequences waiting at most); retry on another.`, { code: "pod_overloaded", headers: { "retry-after": "1" } });

  async function handle(c: Context, kind: "chat" | "completion"): Promise<Response> {
    const receivedAt = performance.now();
    if (d.state.draining) throw new ApiError(503, "This pod is draining; retry on another.", { code: "pod_unavailable", headers: { "retry-after": "1" } });
    const tenant = c.req.header("x-tenant-id") || "anonymous";
    // Refused before its body is read or tokenized when even one more sequence would not fit.
    if (overloaded(tenant, 1)) throw overloadedError();
    // Active from here: a drain waits for requests still being read or tokenized, not only for generations.
    d.metrics.activeRequests++;
    let done = false;
    let unwatch = () => {};
    // The client left (its signal, a cancelled body, or a stream it stopped reading): an ending is not a failure.
    let left = false;
    const settle = (outcome?: GenerationOutcome) => {
      if (!done) {
        done = true;
        d.metrics.activeRequests--;
        unwatch();
        if (outcome) d.metrics.countGeneration(outcome === "failed" && (left || c.req.raw.signal.aborted) ? "cancelled" : outcome);
      }
    };
    let admitted: Awaited<ReturnType<typeof admit>>;
    try {
      admitted = await admit(c, kind);
    } catch (e) {
      settle();
      throw e;
    }
    const { parsed, plan } = admitted;
    const choices = plan.prompts.length * plan.n;
    if (overloaded(tenant, choices)) {
      settle();
      throw overloadedError();
    }
    const ctx = {
      tenant,
      salt: chainSeed(tenant, d.modelId),
      requestId: c.req.header("x-request-id") || crypto.randomUUID(),
      eosIds: d.codec.eosIds,
      decode: (ids: number[]) => d.codec.decode(ids),
      receivedAt,
      latency: d.metrics.latency,
    };
    const stream = parsed.stream === true;
    const fmt = new ChoiceFormatter(kind, d.modelId, d.codec, choices, plan.echo, plan.n, d.model.runtime.backend, stream);
    const withLogprobs = plan.sampling(0).logprobs;
    const recordPrompt = (choice: number, scores: Sampled[]) => {
      const p = Math.floor(choice / plan.n);
      if (plan.promptLogprobs) fmt.recordPrompt(choice, plan.prompts[p]!, plan.promptLogprobs.from[p]!, scores);
    };
    const includeUsage = stream && parsed.stream_options?.include_usage === true;

    if (!stream) {
      let gen!: Generation;
      const answer = new Promise<string[]>((resolve) => {
        gen = new Generation(d.scheduler, plan, ctx, {
          onDelta: (choice, text, s) => void fmt.record(choice, text, s, withLogprobs),
          onPrompt: recordPrompt,
          onChoiceEnd: (choice, reason) => fmt.end(choice, reason),
          onComplete: (usage) => {
            settle("completed");
            resolve(fmt.full(usage, withLogprobs));
          },
          onFailure: (err) => {
            settle("failed");
            resolve([JSON.stringify(errorBody(`Generation failed: ${err.message}`, "server_error", null, "generation_failed"))]);
          },
        });
      });
      unwatch = onAbort(c.req.raw.signal, () => gen.cancel());
      return heldJsonResponse(answer, keepaliveMs, () => {
        left = true;
        gen.cancel();
      });
    }

    const enc = new TextEncoder();
    let gen: Generation | null = null;
    let keepalive: ReturnType<typeof setInterval> | undefined;
    const maxUnread = d.maxUnreadBytes ?? 64 * 1024 * 1024;
    const body = new ReadableStream<Uint8Array>({
      start(ctl) {
        let lastSent = performance.now();
        const send = (s: string) => {
          lastSent = performance.now();
          try {
            ctl.enqueue(enc.encode(s));
          } catch {
            /* the client is gone; cancel() below stops generation */
          }
          // A client that stops reading would have the pod hold its whole answer (hundreds of MB with logprobs).
          if (STREAM_HIGH_WATER_BYTES - (ctl.desiredSize ?? 0) > maxUnread) {
            left = true;
            gen?.cancel(new Error(`the client left more than ${maxUnread} bytes of the stream unread`));
          }
        };
        const started = new Set<number>();
        const open = (choice: number) => {
          if (started.has(choice)) return;
          started.add(choice);
          const echo = fmt.echoFor(choice);
          if (kind === "chat") send(sseJson(fmt.chunk(choice, { role: "assistant", content: "" }, null, null, includeUsage)));
          else if (echo) send(sseJson(fmt.chunk(choice, echo, null, fmt.echoLogprobs(choice), includeUsage)));
        };
        // While queued, prefilling or stalled: the edge counts a silent pod as stuck.
        keepalive = setInterval(() => {
          if (performance.now() - lastSent >= keepaliveMs) send(SSE_KEEPALIVE);
        }, keepaliveMs);
        gen = new Generation(d.scheduler, plan, ctx, {
          onPrompt: recordPrompt,
          onDelta: (choice, text, s) => {
            open(choice);
            const lp = fmt.record(choice, text, s, withLogprobs);
            if (text === "" && !withLogprobs) return;
            send(sseJson(fmt.chunk(choice, kind === "chat" ? { content: text } : text, null, lp, includeUsage)));
          },
          onChoiceEnd: (choice, reason) => {
            open(choice);
            fmt.end(choice, reason);
            send(sseJson(fmt.chunk(choice, kind === "chat" ? {} : "", reason, null, includeUsage)));
          },
          onComplete: (usage) => {
            if (includeUsage) send(sseJson(fmt.usageChunk(usage)));
            send(SSE_DONE);
            clearInterval(keepalive);
            settle("completed");
            ctl.close();
          },
          onFailure: (err, usage) => {
            send(sseJson(errorBody(`Generation failed: ${err.message}`, "server_error", null, "generation_failed")));
            if (includeUsage) send(sseJson(fmt.usageChunk(usage)));
            clearInterval(keepalive);
            settle("failed");
            try {
              ctl.close();
            } catch {
              /* already cancelled */
            }
          },
        });
        unwatch = onAbort(c.req.raw.signal, () => gen?.cancel());
      },
      cancel() {
        clearInterval(keepalive);
        left = true;
        gen?.cancel();
        settle("cancelled");
      },
    }, new ByteLengthQueuingStrategy({ highWaterMark: STREAM_HIGH_WATER_BYTES }));
    return new Response(body, { headers: SSE_HEADERS });
  }

  return app;
}

/** Bytes a stream queues before it reports backpressure (the queue's size is high water − desired size). */
const STREAM_HIGH_WATER_BYTES = 64 * 1024;

/**
 * Calls `cancel` when the client goes away (at once if it already has); the returned function stops
 * watching and must run when the request settles. A listener left behind leaks the whole request: undici
 * keeps a Request's signal, listeners included, reachable until that Request is collected, and the listener
 * reaches the Request back through the handler's context, so it never is.
 */
function onAbort(signal: AbortSignal, cancel: () => void): () => void {
  if (signal.aborted) {
    cancel();
    return () => {};
  }
  signal.addEventListener("abort", cancel, { once: true });
  return () => signal.removeEventListener("abort", cancel);
}
