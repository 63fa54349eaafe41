import { serve } from "@hono/node-server";
import type { Server } from "node:http";
import { Hono } from "hono";
import { ApiError } from "../../src/openai/errors.js";

export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** What the pod answers while its model loads: alive, not ready, and every other call a 503 to retry elsewhere. */
export function loadingApp(podId: string): Hono {
  const app = new Hono();
  app.get("/livez", (c) => c.json({ status: "alive", pod: podId }));
  app.get("/health", (c) => c.json({ status: "loading", pod: podId }, 503));
  const unavailable = new ApiError(503, "The model is still loading; retry on another pod.", { code: "pod_unavailable", headers: { "retry-after": "1" } });
  app.all("*", (c) => c.json(unavailable.toBody(), 503, unavailable.headers));
  return app;
}

export interface PodListener {
  server: Server;
  port: number;
  /** Hands every later request to `handler` (the pod's app once the model is loaded). */
  install(handler: FetchHandler): void;
}

/**
 * Binds the pod's port before the model loads, answering with `initial` until `install`: a taken port fails at
 * once instead of after minutes of loading, and probes see "loading" (503) instead of a refused connection.
 * Rejects with the listen error (EADDRINUSE, EACCES).
 */
export async function listen(port: number, hostname: string, initial: FetchHandler): Promise<PodListener> {
  let handler = initial;
  const server = serve({ fetch: (request) => handler(request), port, hostname }) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const address = server.address();
  return {
    server,
    port: typeof address === "object" && address ? address.port : port,
    install: (h) => {
      handler = h;
    },
  };
}
