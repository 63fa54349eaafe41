import { Worker } from "node:worker_threads";

/**
 * Starts the worker module `name` that sits next to the calling module (`callerUrl`: its `import.meta.url`).
 * From TypeScript sources the worker registers tsx's loader before importing the module: workers do not
 * inherit the main thread's loader hooks on Node 20.
 */
export function spawnSiblingWorker(callerUrl: string, name: string, workerData: unknown): Worker {
  const fromSource = callerUrl.endsWith(".ts");
  const script = new URL(`./${name}${fromSource ? ".ts" : ".js"}`, callerUrl);
  if (!fromSource) return new Worker(script, { workerData });
  const boot = `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(script.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}
