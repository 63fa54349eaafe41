import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { MAX_ATTEMPTS, MAX_DELAY_SECONDS, parseRetryAfter, retryDelaySeconds } from "../../src/webhooks/backoff.js";
import { generateWebhookSecret, webhookHeaders } from "../../src/webhooks/signing.js";
import { checkEndpointUrl, isPrivateHost } from "../../src/webhooks/url-policy.js";
import { costMicros } from "../../src/metering/pricing.js";
import { splitByHours } from "../../src/metering/report-range.js";

describe("Standard Webhooks signing", () => {
  it("produces signatures the reference library verifies, with every current secret", async () => {
    const a = generateWebhookSecret();
    const b = generateWebhookSecret();
    const body = JSON.stringify({ type: "usage.recorded", data: { events: [] } });
    const headers = await webhookHeaders([a, b], "msg_1", Math.floor(Date.now() / 1000), body);
    expect(new Webhook(a).verify(body, headers)).toEqual(JSON.parse(body));
    expect(new Webhook(b).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(generateWebhookSecret()).verify(body, headers)).toThrow();
    expect(() => new Webhook(a).verify(body + " ", headers)).toThrow();
  });
});

describe("webhook retry schedule", () => {
  it("grows exponentially with jitter, within bounds, and honours Retry-After", () => {
    const at = (n: number, r = 0.5) => retryDelaySeconds(n, 5, null, () => r);
    expect(at(1, 0)).toBe(3);
    expect(at(1, 1)).toBe(5);
    expect(at(5, 1)).toBe(80);
    expect(at(30, 1)).toBe(MAX_DELAY_SECONDS);
    expect(retryDelaySeconds(1, 5, "120", () => 0)).toBe(120);
    const total = Array.from({ length: MAX_ATTEMPTS - 1 }, (_, i) => at(i + 1, 0)).reduce((a, b) => a + b, 0);
    expect(total / 3600).toBeGreaterThan(6); // retries span hours before dead-lettering
    expect(parseRetryAfter(new Date(Date.now() + 30_000).toUTCString(), Date.now())).toBeGreaterThanOrEqual(29);
    expect(parseRetryAfter("soon", 0)).toBeNull();
  });
});

describe("webhook URL policy", () => {
  it.each([
    ["https://billing.example.com/hooks", true, null],
    ["http://billing.example.com/hooks", true, /https/],
    ["http://127.0.0.1:9000/h", false, null],
    ["https://127.0.0.1/h", true, /private/],
    ["https://10.1.2.3/h", true, /private/],
    ["https://169.254.169.254/latest/meta-data", true, /private/],
    ["https://[::1]/h", true, /private/],
    ["https://localhost/h", true, /private/],
    ["https://user:pw@example.com/h", true, /credentials/],
    ["gopher://example.com", false, /http/],
    ["nonsense", false, /valid URL/],
  ])("%s (production=%s)", (url, production, problem) => {
    const r = checkEndpointUrl(url, production);
    if (problem === null) expect(r).toBeNull();
    else expect(r).toMatch(problem);
  });
  it("knows the private ranges", () => {
    for (const h of ["192.168.1.1", "172.16.0.1", "172.31.255.255", "100.64.0.1", "fd00::1", "fe80::1", "fec0::1", "ff02::1", "0.0.0.0", "::", "::1"]) expect(isPrivateHost(h), h).toBe(true);
    for (const h of ["172.32.0.1", "8.8.8.8", "example.com", "2001:db8::1", "2606:4700::1111"]) expect(isPrivateHost(h), h).toBe(false);
  });
  it("sees loopback and private IPv4 inside IPv6 literals, as the URL parser writes them", () => {
    for (const url of ["https://[::127.0.0.1]/h", "https://[::ffff:10.0.0.1]/h", "https://[64:ff9b::10.0.0.1]/h", "https://0177.0.0.1/h", "https://2130706433/h", "https://localhost./h", "https://127.0.0.1./h"]) {
      expect(checkEndpointUrl(url, true), url).toMatch(/private/);
    }
  });
});

describe("pricing", () => {
  it("prices cache misses, cache hits and output separately, in micro-dollars", () => {
    const p = { input_per_mtok: 0.27, cached_input_per_mtok: 0.07, output_per_mtok: 1.1 };
    expect(costMicros({ prompt: 1_000_000, cached: 0, completion: 0 }, p)).toBe(270_000);
    expect(costMicros({ prompt: 1_000_000, cached: 1_000_000, completion: 0 }, p)).toBe(70_000);
    expect(costMicros({ prompt: 100, cached: 40, completion: 10 }, p)).toBe(Math.round(60 * 0.27 + 40 * 0.07 + 10 * 1.1));
    expect(costMicros({ prompt: 100, cached: 0, completion: 10 }, undefined)).toBe(0);
  });
});

describe("usage report ranges", () => {
  it("reads whole hours from the aggregates and only the partial ends from the events", () => {
    const h = 3600;
    expect(splitByHours(0, 3 * h)).toEqual({ hours: [0, 3 * h], edges: [] });
    expect(splitByHours(10, 3 * h + 5)).toEqual({ hours: [h, 3 * h], edges: [[10, h], [3 * h, 3 * h + 5]] });
    expect(splitByHours(h - 1, h + 1)).toEqual({ hours: null, edges: [[h - 1, h + 1]] });
    expect(splitByHours(h + 1, 2 * h)).toEqual({ hours: null, edges: [[h + 1, 2 * h]] });
    expect(splitByHours(5, 5)).toEqual({ hours: null, edges: [] });
    expect(splitByHours(9, 5)).toEqual({ hours: null, edges: [] });
  });
});
