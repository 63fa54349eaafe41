import { signEdgeRequest } from "../../../src/auth/edge-signature.js";
import { ApiError, errors } from "../../../src/openai/errors.js";
import { backendUrl } from "../../../src/routing/backend-url.js";
import type { Target } from "../routing/router.js";

export interface ForwardSpec {
  path: string;
  body: Uint8Array;
  model: string;
  targets: Target[];
  requestId: string;
  tenantId: string;
  /** Signs requests to our pods (absent: pods must run without POD_EDGE_SECRET, i.e. in development). */
  podSecret?: string;
  /** Sent as a bearer token to targets that are not our pods. */
  upstreamApiKey?: string;
  /** The client's signal: its disconnect cancels whichever upstream request is in flight. */
  signal: AbortSignal;
  /** Per attempt, until response headers arrive. */
  timeoutMs: number;
  maxAttempts: number;
  /** All attempts together. */
  deadlineMs: number;
  onFailure(target: Target): void;
  onSuccess(target: Target): void;
}

export interface Forwarded {
  response: Response;
  target: Target;
  attempts: number;
}

/** Why an attempt did not produce a usable response; surfaced in the final error when all attempts fail. */
type AttemptFailure = { upstream: string; kind: "connect" | "timeout" | "status"; detail: string };

/** The start of a refusal's body, for the operator's log (why a pod rejected our signature: clock, secret). */
async function firstWords(response: Response): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (!reader) return undefined;
  try {
    const { value } = await reader.read();
    return value ? new TextDecoder().decode(value.subarray(0, 300)) : undefined;
  } catch {
    return undefined;
  } finally {
    reader.cancel().catch(() => {});
  }
}

async function headersFor(spec: ForwardSpec, target: Target): Promise<Record<string, string>> {
  const base: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "x-request-id": spec.requestId,
    "x-tenant-id": spec.tenantId,
  };
  if (target.signed && spec.podSecret) {
    return {
      ...base,
      ...(await signEdgeRequest(spec.podSecret, {
        method: "POST",
        path: spec.path,
        tenant: spec.tenantId,
        requestId: spec.requestId,
        timestamp: Math.floor(Date.now() / 1000),
        body: spec.body,
      })),
    };
  }
  return spec.upstreamApiKey && !target.signed ? { ...base, authorization: `Bearer ${spec.upstreamApiKey}` } : base;
}

/**
 * Statuses that judge the gateway, not the client's request: the client's key and model were already checked at
 * the edge, so a backend's 401/403 means our signature or upstream key is wrong (a rotated secret, a skewed
 * clock) and a 404 that it does not serve the model the registry says it does. Passed through, they would tell
 * a client with a valid key that its key is wrong.
 */
const REFUSED_THE_EDGE = new Set([401, 403, 404]);

/**
 * Sends the request to the targets in order. A connection error, a timeout before the headers, a 5xx, a 3xx or
 * a refusal of the gateway itself moves on to the next target (nothing has reached the client yet, so retrying is
 * invisible to it), within `maxAttempts` and `deadlineMs`; a 2xx or another 4xx is returned as is. Client
 * disconnect aborts and stops.
 */
export async function forward(spec: ForwardSpec): Promise<Forwarded> {
  const failures: AttemptFailure[] = [];
  const deadline = Date.now() + spec.deadlineMs;
  for (const target of spec.targets.slice(0, spec.maxAttempts)) {
    if (spec.signal.aborted) break;
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    const controller = new AbortController();
    const onClientAbort = () => controller.abort(spec.signal.reason);
    spec.signal.addEventListener("abort", onClientAbort);
    const timer = setTimeout(() => controller.abort(new Error("timeout")), Math.min(spec.timeoutMs, remaining));
    const url = backendUrl(target.url, spec.path);
    try {
      // Redirects are not followed: they would carry the body, the tenant and any upstream key to wherever the
      // Location points. An OpenAI-compatible backend never redirects a POST; one that does is misconfigured.
      const response = await fetch(url, { method: "POST", body: spec.body, signal: controller.signal, headers: await headersFor(spec, target), redirect: "manual" });
      const redirected = response.status >= 300 && response.status < 400;
      const refused = REFUSED_THE_EDGE.has(response.status);
      if (response.status >= 500 || redirected || refused) {
        const why = redirected ? " (redirect not followed)" : refused ? " (the backend refused the gateway)" : "";
        const upstream = target.podId ?? target.url;
        // A refusal is a configuration error (a secret, a key, the registry): said at once, even if another backend answers.
        if (refused) console.error(JSON.stringify({ msg: "backend refused the gateway", upstream, status: response.status, said: await firstWords(response) }));
        else await response.body?.cancel().catch(() => {});
        failures.push({ upstream, kind: "status", detail: `HTTP ${response.status}${why}` });
        // A backend without this model still serves its others: it is passed over, not taken out.
        if (response.status !== 404) spec.onFailure(target);
        continue;
      }
      spec.onSuccess(target);
      return { response, target, attempts: failures.length + 1 };
    } catch (e) {
      if (spec.signal.aborted) break;
      const timedOut = controller.signal.aborted;
      failures.push({ upstream: target.podId ?? target.url, kind: timedOut ? "timeout" : "connect", detail: e instanceof Error ? e.message : String(e) });
      spec.onFailure(target);
    } finally {
      clearTimeout(timer);
      spec.signal.removeEventListener("abort", onClientAbort);
    }
  }
  if (spec.signal.aborted) throw new ApiError(499, "Client closed the request.", { code: "client_closed_request" });
  throw allFailed(spec.model, failures, spec.targets.length);
}

function allFailed(model: string, failures: AttemptFailure[], targets: number): ApiError {
  if (targets === 0) return errors.upstreamUnavailable(`No backend serves model '${model}' right now. Please retry later.`);
  // Details (addresses, errno) go to the log, not to the client.
  console.error(JSON.stringify({ msg: "all upstreams failed", model, failures }));
  const summary = failures.map((f) => (f.kind === "status" ? f.detail : `${f.kind} error`)).join(", ");
  // Some upstream answered with a server error → 502 Bad Gateway; none answered at all → 503.
  return failures.some((f) => f.kind === "status")
    ? errors.upstreamError(`The backend for model '${model}' failed (${summary}). Please retry.`)
    : errors.upstreamUnavailable(`No backend for model '${model}' is reachable right now (${summary || "deadline exceeded"}). Please retry.`);
}
