import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import gateway from "../../workers/gateway/index.js";
import type { Env } from "../../workers/gateway/env.js";

const worker = exports as unknown as { default: Fetcher };

export const ADMIN = "test-admin-token";

/** A request to the gateway worker, in the same workerd as the test. */
export function gw(path: string, init: RequestInit = {}): Promise<Response> {
  return worker.default.fetch(new Request(`https://gateway.test${path}`, init));
}

/**
 * A request to the gateway under the test environment with some of its vars replaced (settings are read per
 * environment). Wait on `ctx` (waitOnExecutionContext) for the request's background work.
 */
export function gwWithVars(vars: Partial<Env>, path: string, init: RequestInit = {}): { ctx: ExecutionContext; res: Promise<Response> } {
  const ctx = createExecutionContext();
  return { ctx, res: Promise.resolve(gateway.fetch(new Request(`https://gateway.test${path}`, init), { ...env, ...vars }, ctx)) };
}

export async function adminCall<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await gw(`/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as T };
}

/** A fresh tenant and key; every test gets its own so tests never share state. */
export async function newTenantKey(spec: Record<string, unknown> = {}): Promise<{ tenant: string; key: string; keyId: string }> {
  const t = await adminCall<{ id: string }>("POST", "/tenants", { name: `t-${crypto.randomUUID()}` });
  const k = await adminCall<{ id: string; key: string }>("POST", `/tenants/${t.json.id}/keys`, spec);
  return { tenant: t.json.id, key: k.json.key, keyId: k.json.id };
}

export function authed(key: string, body: unknown, extra: Record<string, string> = {}): RequestInit {
  return {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...extra },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}
