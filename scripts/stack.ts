import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { parse as parseToml } from "smol-toml";
import { generateApiKey } from "../src/auth/api-keys.js";
import { startPod, type PodProcess } from "./pod-process.js";

/**
 * The local stack as `npm start` and the end-to-end tests run it: real pod processes with the tiny model,
 * the gateway under `wrangler dev` (workerd, local D1), migrations applied, a demo tenant and key seeded.
 */
export interface StackOptions {
  /** 0 = any free port (tried again on another if it is taken before the gateway binds it). */
  gatewayPort: number;
  /** Where wrangler keeps local D1/KV/DO state. */
  persistDir: string;
  modelDir: string;
  modelId: string;
  /** Regions of the backend registry (seeded through the admin API). */
  regions?: { id: string; name: string; latitude: number; longitude: number }[];
  /** Pods to start (port 0 = any free port), registered in their region. */
  pods: PodSpec[];
  /** Where the local gateway believes clients are (its `request.cf` latitude/longitude). */
  clientLocation?: { latitude: number; longitude: number };
  /** Catalog entries for other upstreams (benchmarks, external engines), added to the pods' model. */
  extraModels?: { id: string; upstreams: string[] }[];
  adminToken?: string;
  demoKey?: string;
  /** Extra worker vars (e.g. a short AUTH_CACHE_TTL_SECONDS in tests). */
  vars?: Record<string, string>;
  log?: (line: string) => void;
}

export interface PodSpec {
  id: string;
  port: number;
  region: string;
  args?: string[];
}

export interface Stack {
  gatewayUrl: string;
  adminToken: string;
  demoKey: string;
  demoTenant: string;
  /** Running pods by id (replaced by restartPod). */
  pods: Map<string, PodProcess>;
  gateway: ChildProcess;
  /** Kills a pod abruptly (SIGKILL), as a crash would. */
  killPod(id: string): Promise<void>;
  /** Starts a pod again on its previous port (on a fresh one, re-registered, if that was taken meanwhile). */
  restartPod(id: string): Promise<void>;
  stop(): Promise<void>;
  /** Calls the admin API with the stack's token; throws on an error answer other than 409. */
  admin: AdminCall;
}

const WRANGLER = resolve("node_modules/wrangler/bin/wrangler.js");

/** The model's entry in wrangler.toml's development catalog, prices included, so the local stack bills as a deployed gateway. */
function catalogEntry(modelId: string): Record<string, unknown> {
  const vars = (parseToml(readFileSync(resolve("wrangler.toml"), "utf8")) as { vars?: { MODELS?: string } }).vars;
  const entry = (JSON.parse(vars?.MODELS ?? "[]") as { id: string }[]).find((m) => m.id === modelId);
  return entry ?? { id: modelId, owned_by: "moe-edge" };
}

// No telemetry and no fetch of Cloudflare's `request.cf` sample: this machine has no network.
const wranglerEnv = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" };

function freePort(): Promise<number> {
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
      if ((await fetch(url, { signal: AbortSignal.timeout(2000) })).ok) return;
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
  // Edge and pods share a fresh signing secret per stack.
  const podSecret = generateApiKey().replace(/^sk-/, "pod-");
  const pods = new Map<string, PodProcess>();
  const ports = new Map<string, number>();
  let gateway: ChildProcess | null = null;
  const launch = async (p: PodSpec, port: number) => {
    const pod = await startPod(
      ["--model", o.modelDir, "--served-model-name", o.modelId, "--pod-id", p.id, "--port", String(port), ...(p.args ?? [])],
      { POD_EDGE_SECRET: podSecret },
    );
    pods.set(p.id, pod);
    ports.set(p.id, pod.port);
    log(`pod ${p.id} ready on ${pod.url}`);
    return pod;
  };
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
    await Promise.all([...pods.values()].map((p) => p.stop()));
  };
  try {
    await Promise.all(o.pods.map((p) => launch(p, p.port)));

    mkdirSync(o.persistDir, { recursive: true });
    await run(["d1", "migrations", "apply", "DB", "--local", "--persist-to", o.persistDir], log);
    const models = [...(o.pods.length ? [catalogEntry(o.modelId)] : []), ...(o.extraModels ?? [])];
    const envFile = join(o.persistDir, "gateway.env");
    const vars: Record<string, string> = { GATEWAY_ADMIN_TOKEN: adminToken, POD_SHARED_SECRET: podSecret, MODELS: JSON.stringify(models), ...o.vars };
    writeFileSync(envFile, Object.entries(vars).map(([k, v]) => `${k}=${dotenvQuote(v)}`).join("\n") + "\n", { mode: 0o600 });
    // The local stand-in for Cloudflare's request.cf: where clients are, for nearest-region routing.
    const where = o.clientLocation ?? { latitude: 48.86, longitude: 2.35 };
    const cfPath = join(o.persistDir, "cf.json");
    writeFileSync(cfPath, JSON.stringify({ colo: "LOCAL", country: "XX", latitude: String(where.latitude), longitude: String(where.longitude), asn: 0, httpProtocol: "HTTP/1.1", tlsVersion: "", tlsCipher: "", clientTcpRtt: 0, edgeRequestKeepAliveStatus: 1, requestPriority: "", clientAcceptEncoding: "" }));
    // A port found free can be taken (by any process's outgoing connection) before workerd binds it: the
    // stack then tries fresh ones. A gateway port the caller named is used as given.
    let gatewayUrl = "";
    for (let attempt = 1; ; attempt++) {
      const port = o.gatewayPort || (await freePort());
      const inspector = await freePort();
      // Its output until it answers, for the error if it never does (not kept after: it logs every request).
      const lines: string[] = [];
      let started = false;
      gateway = spawn(
        process.execPath,
        [WRANGLER, "dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector), "--persist-to", o.persistDir, "--env-file", envFile, "--show-interactive-dev-session=false", "--log-level", "log"],
        { env: { ...wranglerEnv, CLOUDFLARE_CF_FETCH_ENABLED: "true", CLOUDFLARE_CF_FETCH_PATH: cfPath }, stdio: ["ignore", "pipe", "pipe"], detached: true },
      );
      for (const s of [gateway.stdout!, gateway.stderr!]) {
        createInterface({ input: s }).on("line", (l) => {
          if (!started) lines.push(l);
          log(`[gateway] ${l}`);
        });
      }
      gatewayUrl = `http://127.0.0.1:${port}`;
      const proc = gateway;
      const closed = new Promise((r) => proc.once("close", r));
      try {
        await waitFor(`${gatewayUrl}/health`, 90_000, () => proc.exitCode === null);
        started = true;
        break;
      } catch (e) {
        // Output can arrive after the exit event: let the streams close (briefly) before reading it.
        if (proc.exitCode !== null) await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
        const taken = lines.filter((l) => l.includes("Address already in use"));
        const namedTaken = o.gatewayPort && taken.some((l) => l.includes(`:${port})`));
        if (taken.length && !namedTaken && attempt < 3) continue;
        throw new Error(`${(e as Error).message}; the gateway's last output:\n${lines.slice(-30).join("\n")}`);
      }
    }

    const admin = adminClient(gatewayUrl, adminToken);
    const register = (p: PodSpec) => admin("PUT", `/pods/${p.id}`, { region: p.region, url: pods.get(p.id)!.url, models: [o.modelId], capacity: 64, kind: "moe-pod" });
    for (const r of o.regions ?? []) await admin("PUT", `/regions/${r.id}`, { name: r.name, latitude: r.latitude, longitude: r.longitude });
    for (const p of o.pods) await register(p);
    const { tenant, key } = await seedDemo(admin, gatewayUrl, o.demoKey);
    return {
      gatewayUrl,
      adminToken,
      demoKey: key,
      demoTenant: tenant,
      pods,
      gateway,
      stop,
      admin,
      killPod: async (id) => {
        await pods.get(id)?.stop("SIGKILL");
      },
      restartPod: async (id) => {
        const spec = o.pods.find((p) => p.id === id)!;
        try {
          await launch(spec, ports.get(id)!);
        } catch (e) {
          // Its port can be taken while it is down (by any process's outgoing connection): it then comes back
          // on a fresh one, and the gateway's registry is told the new address.
          if (!(e as Error).message.includes("EADDRINUSE")) throw e;
          log(`pod ${id}'s port ${ports.get(id)} was taken while it was down; restarting it on a fresh one`);
          await launch(spec, 0);
          await register(spec);
        }
      },
    };
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

export type AdminCall = (method: string, path: string, body?: unknown) => Promise<{ status: number; json: Record<string, unknown> }>;

function adminClient(gatewayUrl: string, adminToken: string): AdminCall {
  return async (method, path, body) => {
    const res = await fetch(`${gatewayUrl}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok && res.status !== 409) throw new Error(`admin ${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return { status: res.status, json };
  };
}

/** Finds or creates the "demo" tenant and makes sure the demo key (given or fresh) belongs to it. */
async function seedDemo(admin: AdminCall, gatewayUrl: string, wanted?: string): Promise<{ tenant: string; key: string }> {
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
