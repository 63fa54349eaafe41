import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { generateApiKey } from "../src/auth/api-keys.js";
import { startPod, type PodProcess } from "./pod-process.js";

/**
 * The local stack as `npm start` and the end-to-end tests run it: real pod processes with the tiny model,
 * the gateway under `wrangler dev` (workerd, local D1), migrations applied, a demo tenant and key seeded.
 */
export interface StackOptions {
  gatewayPort: number;
  /** Where wrangler keeps local D1/KV/DO state. */
  persistDir: string;
  modelDir: string;
  modelId: string;
  /** Pods to start (port 0 = any free port). */
  pods: { id: string; port: number; args?: string[] }[];
  /** Catalog entries for other upstreams (benchmarks, external engines), added to the pods' model. */
  extraModels?: { id: string; upstreams: string[] }[];
  adminToken?: string;
  demoKey?: string;
  /** Extra worker vars (e.g. a short AUTH_CACHE_TTL_SECONDS in tests). */
  vars?: Record<string, string>;
  log?: (line: string) => void;
}

export interface Stack {
  gatewayUrl: string;
  adminToken: string;
  demoKey: string;
  demoTenant: string;
  pods: PodProcess[];
  gateway: ChildProcess;
  stop(): Promise<void>;
}

const WRANGLER = resolve("node_modules/wrangler/bin/wrangler.js");
// No telemetry and no fetch of Cloudflare's `request.cf` sample: this machine has no network.
const wranglerEnv = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" };

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

function run(args: string[], log: (l: string) => void): Promise<void> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [WRANGLER, ...args], { env: wranglerEnv, stdio: ["ignore", "pipe", "pipe"] });
    const out: string[] = [];
    for (const s of [p.stdout!, p.stderr!]) createInterface({ input: s }).on("line", (l) => out.push(l));
    p.once("exit", (code) => {
      out.forEach(log);
      if (code === 0) res();
      else rej(new Error(`wrangler ${args.join(" ")} exited with ${code}:\n${out.join("\n")}`));
    });
  });
}

async function waitFor(url: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`process serving ${url} exited`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const log = o.log ?? (() => {});
  const adminToken = o.adminToken ?? generateApiKey().replace(/^sk-/, "adm-");
  const pods: PodProcess[] = [];
  let gateway: ChildProcess | null = null;
  const stop = async () => {
    if (gateway && gateway.exitCode === null) {
      const exited = new Promise((r) => gateway!.once("exit", r));
      try {
        process.kill(-gateway.pid!, "SIGTERM"); // wrangler and its workerd child
      } catch {
        gateway.kill("SIGTERM");
      }
      await exited;
    }
    await Promise.all(pods.map((p) => p.stop()));
  };
  try {
    const started = await Promise.all(
      o.pods.map((p) => startPod(["--model", o.modelDir, "--served-model-name", o.modelId, "--pod-id", p.id, "--port", String(p.port), ...(p.args ?? [])])),
    );
    pods.push(...started);
    for (const p of pods) log(`pod ${p.url} ready`);

    mkdirSync(o.persistDir, { recursive: true });
    await run(["d1", "migrations", "apply", "DB", "--local", "--persist-to", o.persistDir], log);
    const models = [...(pods.length ? [{ id: o.modelId, owned_by: "moe-edge", upstreams: pods.map((p) => p.url) }] : []), ...(o.extraModels ?? [])];
    const envFile = join(o.persistDir, "gateway.env");
    const vars: Record<string, string> = { GATEWAY_ADMIN_TOKEN: adminToken, MODELS: JSON.stringify(models), ...o.vars };
    writeFileSync(envFile, Object.entries(vars).map(([k, v]) => `${k}=${dotenvQuote(v)}`).join("\n") + "\n", { mode: 0o600 });
    const inspector = await freePort();
    gateway = spawn(
      process.execPath,
      [WRANGLER, "dev", "--ip", "127.0.0.1", "--port", String(o.gatewayPort), "--inspector-port", String(inspector), "--persist-to", o.persistDir, "--env-file", envFile, "--show-interactive-dev-session=false", "--log-level", "warn"],
      { env: wranglerEnv, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    for (const s of [gateway.stdout!, gateway.stderr!]) createInterface({ input: s }).on("line", (l) => log(`[gateway] ${l}`));
    const gatewayUrl = `http://127.0.0.1:${o.gatewayPort}`;
    await waitFor(`${gatewayUrl}/health`, 90_000, () => gateway!.exitCode === null);

    const { tenant, key } = await seedDemo(gatewayUrl, adminToken, o.demoKey);
    return { gatewayUrl, adminToken, demoKey: key, demoTenant: tenant, pods, gateway, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Single quotes: dotenv takes the value literally (JSON's double quotes and backslashes survive). */
function dotenvQuote(v: string): string {
  if (v.includes("'") || v.includes("\n")) throw new Error(`cannot pass a value with a single quote or newline through the env file: ${v.slice(0, 40)}`);
  return `'${v}'`;
}

/** Finds or creates the "demo" tenant and makes sure the demo key (given or fresh) belongs to it. */
async function seedDemo(gatewayUrl: string, adminToken: string, wanted?: string): Promise<{ tenant: string; key: string }> {
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${gatewayUrl}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok && res.status !== 409) throw new Error(`admin ${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return { status: res.status, json };
  };
  const found = (await admin("GET", "/tenants?name=demo")).json.data as { id: string }[];
  const tenant = found[0]?.id ?? ((await admin("POST", "/tenants", { name: "demo" })).json.id as string);
  if (wanted) {
    const works = (await fetch(`${gatewayUrl}/v1/models`, { headers: { authorization: `Bearer ${wanted}` } })).ok;
    if (!works) {
      const r = await admin("POST", `/tenants/${tenant}/keys`, { name: "demo", key: wanted });
      if (r.status === 409) throw new Error("GATEWAY_DEMO_KEY is registered but not usable (revoked or expired); choose another key");
    }
    return { tenant, key: wanted };
  }
  const created = await admin("POST", `/tenants/${tenant}/keys`, { name: "demo" });
  return { tenant, key: created.json.key as string };
}
