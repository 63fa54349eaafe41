import { describe, expect, it } from "vitest";
import { REPLAY_WINDOW_SECONDS, signEdgeRequest, verifyEdgeRequest } from "../../src/auth/edge-signature.js";

const body = new TextEncoder().encode('{"model":"m"}');
const base = { method: "POST", path: "/v1/chat/completions", tenant: "ten_a", requestId: "req_1", timestamp: 1_000_000, body };

async function check(mutate: (h: Headers, r: { method: string; path: string; body: Uint8Array }) => void, now = 1_000_000, secret: string | string[] = "s3cret") {
  const headers = new Headers(await signEdgeRequest("s3cret", base));
  const req = { method: "POST", path: "/v1/chat/completions", body };
  mutate(headers, req);
  return verifyEdgeRequest(secret, { ...req, headers }, now);
}

describe("edge → pod signatures", () => {
  it("accepts what the edge signed", async () => {
    expect(await check(() => {})).toEqual({ ok: true });
  });
  it.each([
    ["a changed body", (_h: Headers, r: { body: Uint8Array }) => void (r.body = new TextEncoder().encode('{"model":"x"}'))],
    ["a changed path", (_h: Headers, r: { path: string }) => void (r.path = "/v1/completions")],
    ["a changed method", (_h: Headers, r: { method: string }) => void (r.method = "PUT")],
    ["another tenant (prefix-cache salt)", (h: Headers) => h.set("x-tenant-id", "ten_b")],
    ["another request id", (h: Headers) => h.set("x-request-id", "req_2")],
    ["no signature", (h: Headers) => h.delete("x-edge-signature")],
    ["a forged signature", (h: Headers) => h.set("x-edge-signature", "v1=" + "0".repeat(64))],
    ["a malformed timestamp", (h: Headers) => h.set("x-edge-timestamp", "soon")],
  ])("rejects %s", async (_n, mutate) => {
    expect((await check(mutate as never)).ok).toBe(false);
  });
  it("rejects stale and future timestamps (replay window)", async () => {
    expect((await check(() => {}, 1_000_000 + REPLAY_WINDOW_SECONDS + 1)).ok).toBe(false);
    expect((await check(() => {}, 1_000_000 - REPLAY_WINDOW_SECONDS - 1)).ok).toBe(false);
    expect((await check(() => {}, 1_000_000 + REPLAY_WINDOW_SECONDS)).ok).toBe(true);
  });
  it("rejects another secret", async () => {
    expect((await check(() => {}, 1_000_000, "other")).ok).toBe(false);
    expect((await check(() => {}, 1_000_000, [])).ok).toBe(false);
  });
  it("during a rotation accepts either the new secret or the previous one", async () => {
    expect(await check(() => {}, 1_000_000, ["new", "s3cret"])).toEqual({ ok: true });
    expect(await check(() => {}, 1_000_000, ["s3cret", "old"])).toEqual({ ok: true });
    expect((await check(() => {}, 1_000_000, ["new", "old"])).ok).toBe(false);
  });
});
