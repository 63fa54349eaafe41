import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { verifyEdgeRequest } from "../../src/auth/edge-signature.js";
import { eventually } from "../support/eventually.js";
import { adminCall, authed, gw, newTenantKey } from "./helpers.js";

const DEAD = "http://127.0.0.1:9";
const uid = () => crypto.randomUUID().slice(0, 8);

interface Recorded {
  path: string;
  headers: Record<string, string>;
  raw: string;
}
const upstreamRequests = async (): Promise<Recorded[]> => ((await (await fetch(`${env.UPSTREAM_URL}/_state`)).json()) as { requests: Recorded[] }).requests;

/** The scripted upstream answers as the model it is asked for; registry pods declare "test-registry". */
async function region(id: string, latitude = 50, longitude = 8) {
  return adminCall("PUT", `/regions/${id}`, { name: id, latitude, longitude });
}

describe("backend registry (admin API)", () => {
  it("upserts regions and pods, validating them", async () => {
    const r = `r-${uid()}`;
    expect((await region(r)).status).toBe(201);
    expect((await region(r, 10, 10)).status).toBe(200);
    expect((await adminCall<{ error: { param: string } }>("PUT", `/regions/${r}`, { latitude: 200, longitude: 0 })).json.error.param).toBe("latitude");
    expect((await adminCall("PUT", "/regions/Not_Valid", { latitude: 0, longitude: 0 })).status).toBe(400);
    const bad = await adminCall<{ error: { param: string } }>("PUT", `/pods/p-${uid()}`, { region: "nowhere", url: "http://x", models: ["m"] });
    expect(bad.json.error.param).toBe("region");
    const p = `p-${uid()}`;
    expect((await adminCall("PUT", `/pods/${p}`, { region: r, url: "http://10.0.0.1:8100", models: ["m"], capacity: 8 })).status).toBe(201);
    const list = await adminCall<{ data: { id: string; latitude: number; pods: { id: string; capacity: number }[] }[] }>("GET", "/regions");
    const mine = list.json.data.find((x) => x.id === r)!;
    expect(mine.latitude).toBe(10);
    expect(mine.pods).toMatchObject([{ id: p, capacity: 8 }]);
    expect((await adminCall("DELETE", `/regions/${r}`)).status).toBe(409);
    expect((await adminCall("DELETE", `/pods/${p}`)).status).toBe(200);
    expect((await adminCall("DELETE", `/regions/${r}`)).status).toBe(200);
    expect((await adminCall("DELETE", `/regions/${r}`)).status).toBe(404);
  });
});

describe("region monitors", () => {
  it("stop polling once their region has no backends, and start again when asked", async () => {
    const r = `r-${uid()}`;
    await region(r);
    const pod = { region: r, url: env.UPSTREAM_URL, models: ["test-registry"] };
    await adminCall("PUT", `/pods/a-${r}`, pod);
    const monitor = env.REGION_MONITOR.get(env.REGION_MONITOR.idFromName(r));
    expect((await adminCall("GET", `/regions/${r}/health`)).status).toBe(200); // the first look starts the watch
    expect(await runDurableObjectAlarm(monitor)).toBe(true);
    expect(await runDurableObjectAlarm(monitor)).toBe(true); // each round schedules the next
    await adminCall("DELETE", `/pods/a-${r}`);
    await adminCall("DELETE", `/regions/${r}`);
    await runDurableObjectAlarm(monitor); // the round that finds no backend (unless its own alarm ran it first)
    expect(await runDurableObjectAlarm(monitor)).toBe(false);
    await region(r);
    await adminCall("PUT", `/pods/b-${r}`, pod);
    await adminCall("GET", `/regions/${r}/health`);
    expect(await runDurableObjectAlarm(monitor)).toBe(true);
    await adminCall("DELETE", `/pods/b-${r}`);
  });
});

describe("routing through the registry", () => {
  it("fails over from a dead pod to a live one in the named region, signs requests to pods, and reports the dead one", async () => {
    const r = `r-${uid()}`;
    await region(r);
    // Rendezvous order decides which pod is tried first; with one dead and one live, every request must succeed.
    await adminCall("PUT", `/pods/dead-${r}`, { region: r, url: DEAD, models: ["test-registry"] });
    await adminCall("PUT", `/pods/live-${r}`, { region: r, url: env.UPSTREAM_URL, models: ["test-registry"] });
    const { key, tenant } = await newTenantKey();
    for (let i = 0; i < 4; i++) {
      const res = await gw("/v1/chat/completions", authed(key, { model: "test-registry", messages: [{ role: "user", content: `hello ${i} ${r}` }] }, { "x-region": r }));
      expect(res.status).toBe(200);
      expect(res.headers.get("x-backend-pod")).toBe(`live-${r}`);
      expect(res.headers.get("x-backend-region")).toBe(r);
    }
    const seen = (await upstreamRequests()).filter((q) => q.raw.includes(r));
    expect(seen).toHaveLength(4);
    for (const q of seen) {
      expect(q.headers["x-tenant-id"]).toBe(tenant);
      const headers = new Headers(q.headers);
      const v = await verifyEdgeRequest("test-pod-secret", { method: "POST", path: q.path, headers, body: new TextEncoder().encode(q.raw) }, Math.floor(Date.now() / 1000));
      expect(v).toEqual({ ok: true });
    }
    const health = await adminCall<{ pods: { id: string; healthy: boolean; breaker: string }[] }>("GET", `/regions/${r}/health`);
    expect(health.json.pods.find((p) => p.id === `dead-${r}`)).toMatchObject({ healthy: false, breaker: "open" });
    expect(health.json.pods.find((p) => p.id === `live-${r}`)).toMatchObject({ healthy: true });
  });

  it("a pod refusing the edge is taken out; a pod without the model is only passed over", async () => {
    const r = `r-${uid()}`;
    await region(r);
    const pods = { denied: `${env.UPSTREAM_URL}/denied`, lacking: `${env.UPSTREAM_URL}/elsewhere`, live: env.UPSTREAM_URL };
    for (const [name, url] of Object.entries(pods)) await adminCall("PUT", `/pods/${name}-${r}`, { region: r, url, models: ["test-registry"] });
    const { key } = await newTenantKey();
    // Requests until both failing pods have been tried before the live one (rendezvous order varies by prompt).
    const tried = async () => new Set((await upstreamRequests()).filter((q) => q.raw.includes(r)).map((q) => q.path.split("/")[1]));
    const bothTried = (t: Set<string | undefined>) => t.has("denied") && t.has("elsewhere");
    for (let i = 0; i < 64 && !bothTried(await tried()); i++) {
      const res = await gw("/v1/chat/completions", authed(key, { model: "test-registry", messages: [{ role: "user", content: `refusals ${i} ${r}` }] }, { "x-region": r }));
      expect(res.status).toBe(200);
      expect(res.headers.get("x-backend-pod")).toBe(`live-${r}`);
    }
    expect(await tried()).toEqual(new Set(["denied", "elsewhere", "v1"]));
    const breakers = async () =>
      Object.fromEntries((await adminCall<{ pods: { id: string; breaker: string }[] }>("GET", `/regions/${r}/health`)).json.pods.map((p) => [p.id.replace(`-${r}`, ""), p.breaker]));
    expect(await eventually(5_000, breakers, (b) => b.denied === "open")).toMatchObject({ denied: "open", lacking: "closed", live: "closed" });
  });

  it("answers 503 when no backend serves a listed model", async () => {
    const { key } = await newTenantKey();
    const res = await gw("/v1/chat/completions", authed(key, { model: "test-unserved", messages: [{ role: "user", content: "x" }] }));
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("upstream_unavailable");
  });
});
