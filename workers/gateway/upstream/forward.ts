import type { CatalogEntry } from "../../../src/config/catalog.js";
import { ApiError, errors } from "../../../src/openai/errors.js";

export interface ForwardSpec {
  path: string;
  body: string;
  entry: CatalogEntry;
  requestId: string;
  tenantId: string;
  /** The client's signal: its disconnect cancels whichever upstream request is in flight. */
  signal: AbortSignal;
  /** Per attempt, until response headers arrive. */
  timeoutMs: number;
}

export interface Forwarded {
  response: Response;
  upstream: string;
  attempts: number;
}

/** Why an attempt did not produce a usable response; surfaced in the final error when all attempts fail. */
type AttemptFailure = { upstream: string; kind: "connect" | "timeout" | "status"; detail: string };

/**
 * Sends the request to the model's upstreams in order. A connection error, a timeout before the headers, or a
 * 5xx moves on to the next upstream (nothing has reached the client yet, so retrying is invisible to it); a
 * 2xx or 4xx is returned as is. Client disconnect aborts the attempt in flight and stops.
 */
export async function forward(spec: ForwardSpec): Promise<Forwarded> {
  const failures: AttemptFailure[] = [];
  for (const base of spec.entry.upstreams) {
    if (spec.signal.aborted) break;
    const controller = new AbortController();
    const onClientAbort = () => controller.abort(spec.signal.reason);
    spec.signal.addEventListener("abort", onClientAbort);
    const timer = setTimeout(() => controller.abort(new Error("timeout")), spec.timeoutMs);
    const url = new URL(spec.path, base.endsWith("/") ? base : `${base}/`).toString();
    try {
      const response = await fetch(url, {
        method: "POST",
        body: spec.body,
        signal: controller.signal,
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "x-request-id": spec.requestId,
          "x-tenant-id": spec.tenantId,
          ...(spec.entry.upstream_api_key ? { authorization: `Bearer ${spec.entry.upstream_api_key}` } : {}),
        },
      });
      if (response.status >= 500) {
        failures.push({ upstream: base, kind: "status", detail: `HTTP ${response.status}` });
        await response.body?.cancel().catch(() => {});
        continue;
      }
      return { response, upstream: base, attempts: failures.length + 1 };
    } catch (e) {
      if (spec.signal.aborted) break;
      const timedOut = controller.signal.aborted;
      failures.push({ upstream: base, kind: timedOut ? "timeout" : "connect", detail: e instanceof Error ? e.message : String(e) });
    } finally {
      clearTimeout(timer);
      spec.signal.removeEventListener("abort", onClientAbort);
    }
  }
  if (spec.signal.aborted) throw new ApiError(499, "Client closed the request.", { code: "client_closed_request" });
  throw allFailed(spec.entry.id, failures);
}

function allFailed(model: string, failures: AttemptFailure[]): ApiError {
  // Details (addresses, errno) go to the log, not to the client.
  console.error(JSON.stringify({ msg: "all upstreams failed", model, failures }));
  const summary = failures.map((f) => (f.kind === "status" ? f.detail : `${f.kind} error`)).join(", ");
  // Some upstream answered with a server error → 502 Bad Gateway; none answered at all → 503.
  return failures.some((f) => f.kind === "status")
    ? errors.upstreamError(`The backend for model '${model}' failed (${summary}). Please retry.`)
    : errors.upstreamUnavailable(`No backend for model '${model}' is reachable right now (${summary}). Please retry.`);
}
