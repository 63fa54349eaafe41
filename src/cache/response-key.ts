import { toHex } from "../auth/api-keys.js";

/**
 * Which requests may be answered from the edge cache, and under which key. Only deterministic requests —
 * temperature 0, or a fixed seed — have one right answer to reuse. The key hashes the tenant (so no tenant
 * ever receives another's cached answer), the endpoint, and the request canonicalised: fields that do not
 * change the answer dropped, defaults dropped, keys sorted.
 */
const IRRELEVANT = new Set(["stream", "stream_options", "user", "metadata", "store", "service_tier"]);
const DEFAULTS: Record<string, unknown> = {
  n: 1,
  top_p: 1,
  presence_penalty: 0,
  frequency_penalty: 0,
  logprobs: false,
  echo: false,
  parallel_tool_calls: true,
};

export function isDeterministic(body: Record<string, unknown>): boolean {
  return body.temperature === 0 || (typeof body.seed === "number" && Number.isInteger(body.seed));
}

/** Chat's `logprobs: true`, or completions' `logprobs: <n>` (0 included: the sampled tokens' own). */
export function wantsLogprobs(body: Record<string, unknown>): boolean {
  return body.logprobs === true || typeof body.logprobs === "number";
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v === undefined || v === null) continue;
      out[k] = canonical(v);
    }
    return out;
  }
  return value;
}

export function canonicalRequest(body: Record<string, unknown>): string {
  const kept: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (IRRELEVANT.has(k) || v === null || v === undefined) continue;
    if (k in DEFAULTS && JSON.stringify(DEFAULTS[k]) === JSON.stringify(v)) continue;
    kept[k] = v;
  }
  if (kept.temperature === undefined && kept.seed !== undefined) kept.temperature = 1; // the default, made explicit
  return JSON.stringify(canonical(kept));
}

export async function responseCacheKey(tenant: string, path: string, body: Record<string, unknown>): Promise<string> {
  const material = `v1\u0000${tenant}\u0000${path}\u0000${canonicalRequest(body)}`;
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(material))));
}
