import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, inject, it } from "vitest";
import { ErrorBodySchema } from "../../src/openai/errors.js";
import { startPod } from "../../scripts/pod-process.js";
import { listen, loadingApp, type PodListener } from "../../gpu-backend/server/listener.js";

const open: PodListener[] = [];
afterEach(async () => {
  for (const l of open.splice(0)) await new Promise((r) => l.server.close(r));
});

/** A port some other listener holds. */
async function heldPort(): Promise<{ port: number; server: Server }> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return { port: (server.address() as { port: number }).port, server };
}

describe("the pod's listener", () => {
  it("answers while the model loads: alive, not ready, and the API refused with a 503 to retry elsewhere", async () => {
    const l = await listen(0, "127.0.0.1", loadingApp("pod-x").fetch);
    open.push(l);
    const url = `http://127.0.0.1:${l.port}`;
    expect((await fetch(`${url}/livez`)).status).toBe(200);
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ status: "loading", pod: "pod-x" });
    for (const res of [
      await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }),
      await fetch(`${url}/v1/models`),
    ]) {
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(ErrorBodySchema.parse(await res.json()).error.code).toBe("pod_unavailable");
    }
  });

  it("hands requests to the installed app once it is ready", async () => {
    const l = await listen(0, "127.0.0.1", loadingApp("pod-x").fetch);
    open.push(l);
    l.install(() => new Response("served", { status: 200 }));
    const res = await fetch(`http://127.0.0.1:${l.port}/health`);
    expect([res.status, await res.text()]).toEqual([200, "served"]);
  });

  it("rejects with the reason when its port is taken", async () => {
    const held = await heldPort();
    try {
      await expect(listen(held.port, "127.0.0.1", loadingApp("pod-x").fetch)).rejects.toThrow(/EADDRINUSE/);
    } finally {
      held.server.close();
    }
  });

  it("a pod started on a taken port exits with the reason before it loads its model", async () => {
    const held = await heldPort();
    try {
      const start = startPod(["--model", inject("tinyModelDir"), "--port", String(held.port)]);
      const err = (await start.catch((e: Error) => e)) as Error;
      expect(err.message).toMatch(/exited with 1 before ready/);
      expect(err.message).toMatch(/EADDRINUSE/);
      expect(err.message).not.toMatch(/"msg":"loading"/);
    } finally {
      held.server.close();
    }
  });
});
