import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import OpenAI from "openai";
import { parse as parseToml } from "smol-toml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startStack, type Stack } from "../../scripts/stack.js";
import { eventually } from "../support/eventually.js";

const run = promisify(execFile);
const MODEL = "deepseek-v3-tiny";
let stack: Stack;
let persist: string;
let client: OpenAI;
const logs: string[] = [];

beforeAll(async () => {
  persist = mkdtempSync(join(tmpdir(), "stack-"));
  stack = await startStack({
    gatewayPort: 0,
    persistDir: persist,
    modelDir: inject("tinyModelDir"),
    modelId: MODEL,
    regions: [{ id: "local", name: "Local", latitude: 0, longitude: 0 }],
    // Short upstream timeouts, so an answer can outlast them (the pod keeps the line alive).
    pods: [{ id: "pod-e2e", region: "local", port: 0, args: ["--keepalive-ms", "250"] }],
    vars: { AUTH_CACHE_TTL_SECONDS: "2", UPSTREAM_TIMEOUT_MS: "2000", UPSTREAM_IDLE_TIMEOUT_MS: "1000" },
    log: (l) => logs.push(l),
  });
  client = new OpenAI({ baseURL: `${stack.gatewayUrl}/v1`, apiKey: stack.demoKey, maxRetries: 0 });
});

afterAll(async () => {
  await stack?.stop();
  rmSync(persist, { recursive: true, force: true });
});

describe("the gateway in front of a real pod, driven by the official openai SDK", () => {
  it("lists models", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
    expect((await client.models.retrieve(MODEL)).id).toBe(MODEL);
  });

  it("answers a chat completion with usage", async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Hello!" }], max_tokens: 8, temperature: 0 });
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0]!.message.role).toBe("assistant");
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
  });

  it("answers a non-streaming completion that takes longer than the gateway's upstream timeouts", async () => {
    const t0 = performance.now();
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Take your time." }], max_tokens: 1500, temperature: 0, ignore_eos: true } as never);
    expect(performance.now() - t0).toBeGreaterThan(2000);
    expect(r.usage!.completion_tokens).toBe(1500);
    expect(r.choices[0]!.finish_reason).toBe("length");
  });

  it("streams chunks, then exactly one usage chunk, and ends at [DONE]", async () => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Stream please" }],
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const withUsage = chunks.filter((c) => c.usage);
    expect(withUsage).toHaveLength(1);
    expect(chunks.at(-1)).toBe(withUsage[0]);
    expect(withUsage[0]!.choices).toEqual([]);
    expect(chunks.slice(0, -1).every((c) => c.choices.length === 1)).toBe(true);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    const plain = await client.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "Stream please" }], max_tokens: 12, temperature: 0 });
    expect(text).toBe(plain.choices[0]!.message.content);
    expect(withUsage[0]!.usage!.completion_tokens).toBe(plain.usage!.completion_tokens);
  });

  it("streams legacy completions", async () => {
    const stream = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 6, stream: true, temperature: 0 });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.text ?? "";
    const plain = await client.completions.create({ model: MODEL, prompt: "Once upon a time", max_tokens: 6, temperature: 0 });
    expect(text).toBe(plain.choices[0]!.text);
  });

  it("a wrong key is an AuthenticationError", async () => {
    const bad = new OpenAI({ baseURL: `${stack.gatewayUrl}/v1`, apiKey: "sk-this-key-does-not-exist-000000000000", maxRetries: 0 });
    const err = await bad.models.list().catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.code).toBe("invalid_api_key");
  });

  it("the pod's errors reach the client unchanged (context_length_exceeded)", async () => {
    const err = await client.completions.create({ model: MODEL, prompt: "hi", max_tokens: 1_000_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe("context_length_exceeded");
  });

  it("admin CLI: create tenant → create key → use key → revoke → 401 within the cache time", async () => {
    const env = { ...process.env, GATEWAY_URL: stack.gatewayUrl, GATEWAY_ADMIN_TOKEN: stack.adminToken };
    const cli = async (...args: string[]) => JSON.parse((await run("npm", ["run", "-s", "admin", "--", ...args], { env })).stdout);
    const tenant = await cli("tenants", "create", "cli-co", "--rpm", "100");
    expect(tenant.limits).toEqual({ rpm: 100 });
    const key = await cli("keys", "create", tenant.id, "--name", "ci", "--models", MODEL);
    expect(key.key).toMatch(/^sk-/);
    const own = new OpenAI({ baseURL: `${stack.gatewayUrl}/v1`, apiKey: key.key, maxRetries: 0 });
    expect((await own.models.list()).data).toHaveLength(1);
    const listed = await cli("keys", "list", tenant.id);
    expect(listed.data[0].display_prefix).toBe(`sk-...${key.key.slice(-4)}`);
    const revoked = await cli("keys", "revoke", key.id);
    expect(revoked.status).toBe("revoked");
    const deadline = Date.now() + 2000 + 1000; // AUTH_CACHE_TTL_SECONDS=2 in this stack
    let err: unknown = null;
    while (Date.now() < deadline) {
      err = await own.models.list().then(() => null, (e) => e);
      if (err) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
  });

  it("rate limits: the SDK, retrying on 429, completes a burst beyond the limit by waiting", async () => {
    const t = (await stack.admin("POST", "/tenants", { name: "bursty", limits: { max_concurrent: 2 } })).json as { id: string };
    const k = (await stack.admin("POST", `/tenants/${t.id}/keys`, {})).json as { key: string };
    let refused = 0;
    const counting: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (res.status === 429) refused++;
      return res;
    };
    const limitedClient = new OpenAI({ baseURL: `${stack.gatewayUrl}/v1`, apiKey: k.key, maxRetries: 50, fetch: counting });
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => limitedClient.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: `burst ${i}` }], max_tokens: 24, temperature: 0 })),
    );
    expect(results.every((r) => r.choices[0]!.finish_reason)).toBe(true);
    expect(refused).toBeGreaterThan(0);
  });

  it("the stack bills with the catalog's prices (wrangler.toml's development MODELS)", async () => {
    const toml = parseToml(readFileSync("wrangler.toml", "utf8")) as { vars: { MODELS: string } };
    const price = (JSON.parse(toml.vars.MODELS) as { id: string; pricing: { input_per_mtok: number; output_per_mtok: number } }[]).find((m) => m.id === MODEL)!.pricing;
    const key = (await stack.admin("POST", `/tenants/${stack.demoTenant}/keys`, {})).json as { id: string; key: string };
    const priced = new OpenAI({ baseURL: `${stack.gatewayUrl}/v1`, apiKey: key.key, maxRetries: 0 });
    const r = await priced.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "What does it cost?" }], max_tokens: 6, temperature: 0.5 });
    const byKey = async () =>
      ((await (await fetch(`${stack.gatewayUrl}/v1/usage?group_by=key`, { headers: { authorization: `Bearer ${key.key}` } })).json()) as { data: { key: string; requests: number; cost_usd: number }[] }).data;
    const row = (await eventually(15_000, byKey, (d) => d.some((x) => x.key === key.id))).find((x) => x.key === key.id);
    expect(row!.requests).toBe(1);
    const cached = r.usage!.prompt_tokens_details?.cached_tokens ?? 0;
    expect(cached).toBe(0);
    // Costs are kept in whole micro-dollars.
    expect(row!.cost_usd).toBe(Math.round(r.usage!.prompt_tokens * price.input_per_mtok + r.usage!.completion_tokens * price.output_per_mtok) / 1e6);
    expect(row!.cost_usd).toBeGreaterThan(0);
  });

  it("every response carries x-request-id", async () => {
    const { response } = await client.models.list().withResponse();
    expect(response.headers.get("x-request-id")).toMatch(/^req_/);
  });
});
