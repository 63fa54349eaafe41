import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { writeTinyModel } from "../gpu-backend/tools/write-tiny-model.js";
import { startStack } from "./stack.js";

/**
 * `npm start`: the whole local stack — two regions, three real pods with the tiny model, the gateway under
 * wrangler dev on GATEWAY_PORT (8787). GATEWAY_ADMIN_TOKEN and GATEWAY_DEMO_KEY are used when set, otherwise
 * generated and printed. CLIENT_LOCATION="lat,lon" sets where the gateway believes clients are (default
 * Paris → eu-west is nearest); a request header `x-region: us-east` picks a region explicitly.
 */
const modelDir = resolve(process.env.MODEL_DIR ?? "models/tiny-v3");
if (!existsSync(resolve(modelDir, "model.safetensors"))) {
  console.log(`generating the tiny demo model in ${modelDir}…`);
  writeTinyModel(modelDir);
}
const [lat, lon] = (process.env.CLIENT_LOCATION ?? "48.86,2.35").split(",").map(Number);
const firstPod = Number(process.env.POD_PORT ?? 8101);
const stack = await startStack({
  gatewayPort: Number(process.env.GATEWAY_PORT ?? 8787),
  persistDir: resolve(".wrangler/state"),
  modelDir,
  modelId: "deepseek-v3-tiny",
  regions: [
    { id: "eu-west", name: "Frankfurt", latitude: 50.11, longitude: 8.68 },
    { id: "us-east", name: "Virginia", latitude: 38.95, longitude: -77.45 },
  ],
  pods: [
    { id: "pod-eu-1", region: "eu-west", port: firstPod },
    { id: "pod-eu-2", region: "eu-west", port: firstPod + 1 },
    { id: "pod-us-1", region: "us-east", port: firstPod + 2 },
  ],
  clientLocation: { latitude: lat!, longitude: lon! },
  ...(process.env.GATEWAY_ADMIN_TOKEN ? { adminToken: process.env.GATEWAY_ADMIN_TOKEN } : {}),
  ...(process.env.GATEWAY_DEMO_KEY ? { demoKey: process.env.GATEWAY_DEMO_KEY } : {}),
  log: (l) => console.log(l),
});

console.log(`
Gateway  ${stack.gatewayUrl}   (OpenAI-compatible: ${stack.gatewayUrl}/v1)
Regions  eu-west: ${stack.pods.get("pod-eu-1")!.url}, ${stack.pods.get("pod-eu-2")!.url}   us-east: ${stack.pods.get("pod-us-1")!.url}
Clients  located at ${lat},${lon} (CLIENT_LOCATION); header "x-region: us-east" overrides per request
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
