import { waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { estimateReservation } from "../../src/limits/limits.js";
import { eventually } from "../support/eventually.js";
import { adminCall, authed, gw, gwWithVars } from "./helpers.js";

/** A tenant with the given limits and one key (with its own limits). */
async function limited(tenantLimits: Record<string, number> | null, keyLimits: Record<string, number> | null, keys = 1) {
  const t = await adminCall<{ id: string }>("POST", "/tenants", { name: `limits-${crypto.randomUUID()}`, limits: tenantLimits });
  const out: string[] = [];
  for (let i = 0; i < keys; i++) out.push((await adminCall<{ key: string }>("POST", `/tenants/${t.json.id}/keys`, { limits: keyLimits })).json.key);
  return { tenant: t.json.id, keys: out };
}

const upstream = (path: string) => fetch(`${env.UPSTREAM_URL}${path}`).then((r) => r.json()) as Promise<Record<string, number>>;
const chat = (key: string, model: string, content: string, extra: Record<string, unknown> = {}) =>
  gw("/v1/chat/completions", authed(key, { model, messages: [{ role: "user", content }], max_tokens: 16, ...extra }));

/** A small request, retried while the tenant's slot is still held (a left request releases it in the background). */
async function admittedAgain(key: string): Promise<Response> {
  let next = await chat(key, "test-echo", "after");
  for (let i = 0; next.status === 429 && i < 50; i++) {
    await next.text();
    await new Promise((r) => setTimeout(r, 20));
    next = await chat(key, "test-echo", "after");
  }
  return next;
}

/** Resolves once the upstream has received a request from `tenant`. */
const upstreamSaw = (tenant: string) =>
  eventually(5_000, () => upstream("/_state") as unknown as Promise<{ requests: { headers: Record<string, string> }[] }>, (s) => s.requests.some((r) => r.headers["x-tenant-id"] === tenant));

async function readAll(res: Response): Promise<string> {
  return res.text();
}

describe("rate limits (one Durable Object per tenant)", () => {
  it("20 RPM: of 100 concurrent requests exactly 20 are admitted; 80 get 429 with valid headers", async () => {
    const { keys } = await limited(null, { rpm: 20 });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => chat(keys[0]!, "test-echo", `burst ${i}`)));
    const ok = results.filter((r) => r.status === 200);
    const limitedRes = results.filter((r) => r.status === 429);
    expect(ok).toHaveLength(20);
    expect(limitedRes).toHaveLength(80);
    for (const r of limitedRes) {
      const body = (await r.json()) as { error: { type: string; code: string; message: string } };
      expect(body.error).toMatchObject({ type: "requests", code: "rate_limit_exceeded" });
      expect(body.error.message).toMatch(/requests per minute \(RPM\).*Limit 20, Used 20/);
      expect(Number(r.headers.get("retry-after-ms"))).toBeGreaterThan(0);
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(r.headers.get("x-ratelimit-limit-requests")).toBe("20");
      expect(r.headers.get("x-ratelimit-remaining-requests")).toBe("0");
      expect(r.headers.get("x-ratelimit-reset-requests")).toMatch(/^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$/);
    }
    const remaining = ok.map((r) => Number(r.headers.get("x-ratelimit-remaining-requests"))).sort((a, b) => a - b);
    expect(remaining).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await Promise.all(ok.map(readAll));
  });

  it("TPM 1000 with 300-token reservations: 3 run at once; a 4th is admitted once one settles at its real usage", async () => {
    const { keys } = await limited(null, { tpm: 1000 });
    const marker = (i: number) => `hold-${i}-${crypto.randomUUID()}`;
    // Reservation = prompt estimate + max_tokens; size max_tokens so each reserves exactly 300.
    const markers = [0, 1, 2, 3].map(marker);
    const reservation = (m: string) => estimateReservation(new TextEncoder().encode(JSON.stringify([{ role: "user", content: m }])).length, 0);
    const req = (m: string) => chat(keys[0]!, "test-hold", m, { stream: true, max_tokens: 300 - reservation(m) });
    const running = await Promise.all(markers.slice(0, 3).map(req));
    expect(running.map((r) => r.status)).toEqual([200, 200, 200]);
    // Admitted in whichever order they reach the limiter: each saw what the ones before it left.
    expect(running.map((r) => Number(r.headers.get("x-ratelimit-remaining-tokens"))).sort((a, b) => a - b)).toEqual([100, 400, 700]);
    const fourth = await req(markers[3]!);
    expect(fourth.status).toBe(429);
    expect(((await fourth.json()) as { error: { type: string } }).error.type).toBe("tokens");
    // The first finishes having used 10 tokens: 10 + 300 + 300 leaves room for 300 more.
    await upstream(`/_release?marker=${markers[0]}`);
    await readAll(running[0]!);
    let again = await req(markers[3]!);
    for (let i = 0; again.status === 429 && i < 50; i++) {
      await again.text();
      await new Promise((r) => setTimeout(r, 20)); // settlement is written after the response ends
      again = await req(markers[3]!);
    }
    expect(again.status).toBe(200);
    expect(Number(again.headers.get("x-ratelimit-remaining-tokens"))).toBe(1000 - 10 - 300 * 3);
    for (const m of markers.slice(1)) await upstream(`/_release?marker=${m}`);
    await Promise.all([...running.slice(1), again].map(readAll));
  });

  it("max_concurrent 2: ten clients retrying on 429 all finish, never more than 2 in flight", async () => {
    const { keys, tenant } = await limited(null, { max_concurrent: 2 });
    let refusals = 0;
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        for (;;) {
          const res = await chat(keys[0]!, "test-brief", `client ${i}`, { stream: true });
          if (res.status === 200) return readAll(res);
          expect(res.status).toBe(429);
          refusals++;
          const wait = Number(res.headers.get("retry-after-ms"));
          await res.text();
          await new Promise((r) => setTimeout(r, wait));
        }
      }),
    );
    const seen = await upstream(`/_inflight?tenant=${tenant}`);
    expect(seen.max).toBe(2);
    expect(seen.current).toBe(0);
    expect(refusals).toBeGreaterThan(0);
  });

  it("a generation longer than LIMIT_LEASE_MS keeps its concurrency slot (its lease is renewed while it runs)", async () => {
    const { keys } = await limited(null, { max_concurrent: 1 });
    const call = (model: string, content: string) =>
      gwWithVars({ LIMIT_LEASE_MS: "1000" }, "/v1/chat/completions", authed(keys[0]!, { model, messages: [{ role: "user", content }], stream: true }));
    // test-late-patient streams its first word, then is silent for 2.5 s: 2.5 lease terms.
    const long = call("test-late-patient", "2500 long answer");
    const body = (await long.res).text();
    await new Promise((r) => setTimeout(r, 1_600)); // the first term is over
    const during = call("test-echo", "during");
    expect((await during.res).status).toBe(429);
    const text = await body;
    expect(text).toContain(`"content":" answer"`);
    expect(text).not.toContain("error");
    await waitOnExecutionContext(long.ctx);
    const after = call("test-echo", "after");
    expect((await after.res).status).toBe(200);
    await (await after.res).text();
    await Promise.all([waitOnExecutionContext(during.ctx), waitOnExecutionContext(after.ctx)]);
  });

  it("an aborted stream releases its lease and settles its tokens", async () => {
    const { keys } = await limited(null, { max_concurrent: 1, tpm: 100_000 });
    const first = await chat(keys[0]!, "test-slow", "abort me", { stream: true, max_tokens: 5000 });
    expect(first.status).toBe(200);
    const reserved = 100_000 - Number(first.headers.get("x-ratelimit-remaining-tokens"));
    expect(reserved).toBeGreaterThan(5000);
    expect((await chat(keys[0]!, "test-echo", "blocked")).status).toBe(429);
    const reader = first.body!.getReader();
    await reader.read();
    await reader.cancel();
    let next = await chat(keys[0]!, "test-echo", "after abort");
    for (let i = 0; next.status === 429 && i < 100; i++) {
      await next.text();
      await new Promise((r) => setTimeout(r, 20));
      next = await chat(keys[0]!, "test-echo", "after abort");
    }
    expect(next.status).toBe(200);
    // The aborted stream now counts only what it delivered, not its 5000-token reservation.
    const used = 100_000 - Number(next.headers.get("x-ratelimit-remaining-tokens"));
    expect(used).toBeLessThan(reserved);
  });

  it("tenant limits cap the sum over its keys", async () => {
    const { keys } = await limited({ rpm: 10 }, null, 2);
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => chat(keys[i % 2]!, "test-echo", `t ${i}`)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(10);
    const refused = results.find((r) => r.status === 429)!;
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/on tenant ten_/);
  });

  it("a request larger than the whole budget is refused without a retry time; unlimited tenants get no headers", async () => {
    const { keys } = await limited({ tpm: 100 }, null);
    const big = await chat(keys[0]!, "test-echo", "x", { max_tokens: 1000 });
    expect(big.status).toBe(429);
    expect(big.headers.get("retry-after")).toBeNull();
    expect(((await big.json()) as { error: { message: string } }).error.message).toMatch(/Request too large/);
    const free = await limited(null, null);
    const res = await chat(free.keys[0]!, "test-echo", "x");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-ratelimit-limit-requests")).toBeNull();
  });

  it("a completion's reservation counts every choice: prompts × n × max_tokens", async () => {
    const { keys } = await limited({ tpm: 1000 }, null);
    const complete = (prompt: unknown, n: number) =>
      gw("/v1/completions", authed(keys[0]!, { model: "test-echo", prompt, max_tokens: 100, n }));
    // 8 prompts × 2 choices × 100 tokens = 1600 > 1000: more than the whole budget.
    const many = await complete(Array.from({ length: 8 }, (_, i) => `p${i}`), 2);
    expect(many.status).toBe(429);
    expect(((await many.json()) as { error: { message: string } }).error.message).toMatch(/Request too large/);
    expect((await complete([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16], [17, 18], [19, 20], [21, 22]], 1)).status).toBe(429);
    // One token list is one prompt: 1 × 2 × 100 fits.
    const one = await complete([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 2);
    expect(one.status).toBe(200);
    await one.text();
  });

  it("limits are set and changed through the admin API", async () => {
    const t = await adminCall<{ id: string; limits: unknown }>("POST", "/tenants", { name: "lim", limits: { rpm: 5 } });
    expect(t.json.limits).toEqual({ rpm: 5 });
    expect((await adminCall("POST", "/tenants", { name: "bad", limits: { rpm: -1 } })).status).toBe(400);
    const k = await adminCall<{ id: string; key: string }>("POST", `/tenants/${t.json.id}/keys`, { limits: { max_concurrent: 3 } });
    const patched = await adminCall<{ limits: unknown }>("PATCH", `/keys/${k.json.id}`, { limits: { rpm: 1 } });
    expect(patched.json.limits).toEqual({ rpm: 1 });
    expect((await chat(k.json.key, "test-echo", "one")).status).toBe(200);
    expect((await chat(k.json.key, "test-echo", "two")).status).toBe(429);
    const cleared = await adminCall<{ limits: unknown }>("PATCH", `/tenants/${t.json.id}`, { limits: null });
    expect(cleared.json.limits).toBeNull();
  });
  it("a client that leaves a non-streaming request frees its concurrency slot", async () => {
    const { keys, tenant } = await limited({ max_concurrent: 1 }, null);
    const client = new AbortController();
    const left = gw("/v1/chat/completions", { ...authed(keys[0]!, { model: "test-big", messages: [{ role: "user", content: "hold" }], max_tokens: 16 }), signal: client.signal }).catch((e: unknown) => e);
    await upstreamSaw(tenant);
    client.abort();
    await left;
    expect((await admittedAgain(keys[0]!)).status).toBe(200);
  });
  it("a client that leaves while it waits for an identical request's answer frees its slot", async () => {
    const { keys, tenant } = await limited({ max_concurrent: 2 }, null);
    // Deterministic, so the second waits for the first's answer (the edge cache coalesces them).
    const body = { model: "test-big", messages: [{ role: "user", content: "hold" }], max_tokens: 16, temperature: 0 };
    const leader = new AbortController();
    const first = gw("/v1/chat/completions", { ...authed(keys[0]!, body), signal: leader.signal }).catch((e: unknown) => e);
    await upstreamSaw(tenant);
    // Both slots are taken once the follower is admitted; probes find that out. A probe holds the second slot for
    // a moment, so a follower arriving then is refused (429, at once) rather than admitted: send another.
    for (let attempt = 1; ; attempt++) {
      const follower = new AbortController();
      let refused = false;
      const second = gw("/v1/chat/completions", { ...authed(keys[0]!, body), signal: follower.signal }).then(
        (r) => ((refused = r.status === 429), r),
        (e: unknown) => e,
      );
      let probe = await chat(keys[0]!, "test-echo", "probe");
      while (probe.status !== 429 && !refused) {
        await probe.text();
        probe = await chat(keys[0]!, "test-echo", "probe");
      }
      await probe.text();
      if (refused && attempt < 10) {
        await ((await second) as Response).text();
        continue;
      }
      expect(refused).toBe(false);
      follower.abort();
      await second;
      break;
    }
    expect((await admittedAgain(keys[0]!)).status).toBe(200);
    leader.abort();
    await first;
  });
});
