import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { writeTinyModel } from "../gpu-backend/tools/write-tiny-model.js";
import { startStack } from "./stack.js";

/**
 * `npm start`: the whole local stack. Pods on 8100…, the gateway on GATEWAY_PORT (8787).
 * GATEWAY_ADMIN_TOKEN and GATEWAY_DEMO_KEY are used when set, otherwise generated and printed.
 */
const modelDir = resolve(process.env.MODEL_DIR ?? "models/tiny-v3");
if (!existsSync(resolve(modelDir, "model.safetensors"))) {
  console.log(`generating the tiny demo model in ${modelDir}…`);
  writeTinyModel(modelDir);
}
const gatewayPort = Number(process.env.GATEWAY_PORT ?? 8787);
const stack = await startStack({
  gatewayPort,
  persistDir: resolve(".wrangler/state"),
  modelDir,
  modelId: "deepseek-v3-tiny",
  pods: [{ id: "pod-local-1", port: Number(process.env.POD_PORT ?? 8100) }],
  ...(process.env.GATEWAY_ADMIN_TOKEN ? { adminToken: process.env.GATEWAY_ADMIN_TOKEN } : {}),
  ...(process.env.GATEWAY_DEMO_KEY ? { demoKey: process.env.GATEWAY_DEMO_KEY } : {}),
  log: (l) => console.log(l),
});

console.log(`
Gateway  ${stack.gatewayUrl}   (OpenAI-compatible: ${stack.gatewayUrl}/v1)
Pods     ${stack.pods.map((p) => p.url).join(", ")}
Model    deepseek-v3-tiny
GATEWAY_ADMIN_TOKEN=${stack.adminToken}
GATEWAY_DEMO_KEY=${stack.demoKey}

  curl -H "Authorization: Bearer ${stack.demoKey}" ${stack.gatewayUrl}/v1/models
`);
console.log(`ready: gateway on ${stack.gatewayUrl}`);

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  console.log("stopping…");
  await stack.stop();
  process.exit(0);
};
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
