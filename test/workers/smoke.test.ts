import { describe, expect, it } from "vitest";
import { authed, gw, newTenantKey } from "./helpers.js";

describe("smoke", () => {
  it("answers health and chat", async () => {
    expect((await gw("/health")).status).toBe(200);
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, { model: "test-echo", messages: [{ role: "user", content: "hi there" }] }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: { message: { content: string } }[] };
    expect(body.choices[0]!.message.content).toBe("hi there");
  });
});
