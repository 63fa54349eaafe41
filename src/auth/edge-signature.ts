import { constantTimeEqual, toHex } from "./api-keys.js";

/**
 * Edge → pod request signing. The edge signs what a pod acts on: method, path, the tenant the prefix cache is
 * salted with, the request id, a timestamp (replay window) and the body's SHA-256; a pod accepts a request only
 * with a valid, fresh signature. HMAC-SHA256 with a secret shared by the edge and its pods.
 */
export const SIGNATURE_HEADER = "x-edge-signature";
export const TIMESTAMP_HEADER = "x-edge-timestamp";
export const TENANT_HEADER = "x-tenant-id";
export const REQUEST_ID_HEADER = "x-request-id";

/** How far a signed timestamp may be from the pod's clock, either way. */
export const REPLAY_WINDOW_SECONDS = 60;

export interface SignedFields {
  method: string;
  path: string;
  tenant: string;
  requestId: string;
  timestamp: number;
  body: Uint8Array;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)));
}

async function hmacHex(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return toHex(new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message))));
}

async function canonical(f: SignedFields): Promise<string> {
  return ["v1", f.method.toUpperCase(), f.path, f.tenant, f.requestId, String(f.timestamp), await sha256Hex(f.body)].join("\n");
}

export async function signEdgeRequest(secret: string, f: SignedFields): Promise<Record<string, string>> {
  return {
    [TIMESTAMP_HEADER]: String(f.timestamp),
    [TENANT_HEADER]: f.tenant,
    [REQUEST_ID_HEADER]: f.requestId,
    [SIGNATURE_HEADER]: `v1=${await hmacHex(secret, await canonical(f))}`,
  };
}

export type Verdict = { ok: true } | { ok: false; reason: string };

/**
 * Checks a request's signature headers against its method, path and body bytes. `now` in unix seconds. Any of
 * `secrets` may have signed it: during a rotation a pod accepts the new secret and the previous one.
 */
export async function verifyEdgeRequest(
  secrets: string | readonly string[],
  req: { method: string; path: string; headers: { get(name: string): string | null }; body: Uint8Array },
  now: number,
): Promise<Verdict> {
  const sig = req.headers.get(SIGNATURE_HEADER);
  const ts = req.headers.get(TIMESTAMP_HEADER);
  if (!sig || !ts) return { ok: false, reason: "missing edge signature" };
  const timestamp = Number(ts);
  if (!Number.isSafeInteger(timestamp)) return { ok: false, reason: "malformed timestamp" };
  if (Math.abs(now - timestamp) > REPLAY_WINDOW_SECONDS) return { ok: false, reason: "timestamp outside the replay window" };
  const message = await canonical({
    method: req.method,
    path: req.path,
    tenant: req.headers.get(TENANT_HEADER) ?? "",
    requestId: req.headers.get(REQUEST_ID_HEADER) ?? "",
    timestamp,
    body: req.body,
  });
  let match = false;
  // Every secret is tried (no early exit), so timing does not tell which one matched.
  for (const secret of typeof secrets === "string" ? [secrets] : secrets) match = constantTimeEqual(sig, `v1=${await hmacHex(secret, message)}`) || match;
  return match ? { ok: true } : { ok: false, reason: "signature mismatch" };
}
