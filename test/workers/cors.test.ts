import { describe, expect, it } from "vitest";
import { authed, gw, newTenantKey } from "./helpers.js";

const ORIGIN = "https://app.example";

describe("browsers (CORS) on /v1", () => {
  it("answers a preflight without a key, allowing the headers the page asks for", async () => {
    const res = await gw("/v1/chat/completions", {
      method: "OPTIONS",
      headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, x-stainless-os" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    expect(res.headers.get("access-control-allow-headers")).toBe("authorization,content-type,x-stainless-os");
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("lets a page read answers, errors and their headers", async () => {
    const { key } = await newTenantKey();
    const ok = await gw("/v1/chat/completions", authed(key, { model: "test-echo", messages: [{ role: "user", content: "hi" }] }, { origin: ORIGIN }));
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe("*");
    expect(ok.headers.get("access-control-expose-headers")).toContain("x-request-id");
    await ok.text();
    const stream = await gw("/v1/chat/completions", authed(key, { model: "test-echo", messages: [{ role: "user", content: "hi" }], stream: true }, { origin: ORIGIN }));
    expect(stream.headers.get("access-control-allow-origin")).toBe("*");
    await stream.text();
    const denied = await gw("/v1/models", { headers: { origin: ORIGIN, authorization: "Bearer sk-wrong" } });
    expect(denied.status).toBe(401);
    expect(denied.headers.get("access-control-allow-origin")).toBe("*");
    expect(((await denied.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key");
  });

  it("the admin API is not opened to browsers", async () => {
    const res = await gw("/admin/tenants", { method: "OPTIONS", headers: { origin: ORIGIN, "access-control-request-method": "GET" } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});
