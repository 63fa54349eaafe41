import { basename, resolve } from "node:path";
import { z } from "zod";
import { usableCpuCount } from "../engine/kernels/host-cpus.js";

/** "true"/"false" (also 1/0, yes/no, on/off) from a flag or variable; anything else is left to fail validation. */
function switchValue(v: unknown): unknown {
  if (typeof v !== "string") return v;
  const s = v.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(s)) return true;
  if (["0", "false", "no", "off"].includes(s)) return false;
  return v;
}

/** Pod command-line options (also settable as POD_* environment variables in containers). */
export const PodOptionsSchema = z.object({
  model: z.string().min(1, "--model DIR is required"),
  host: z.string().default("127.0.0.1"),
  port: z.coerce.number().int().min(0).max(65535).default(8100),
  servedModelName: z.string().optional(),
  podId: z.string().optional(),
  backend: z.enum(["node", "web"]).default("node"),
  /** Intra-op threads of the pod's pools; default: the CPUs it can keep busy (`usableCpuCount`). */
  threads: z.coerce.number().int().positive().optional(),
  /** Pin pool workers to their own CPUs: off (`--no-pin-threads`, `POD_PIN_THREADS=false`) where the pod shares them. */
  pinThreads: z.preprocess(switchValue, z.boolean()).default(true),
  /** Native backend only: e.g. "cuda,cpu" on GPU hosts. */
  executionProviders: z.string().optional(),
  ep: z.coerce.number().int().positive().default(1),
  /** Hot experts replicated per MoE layer onto the least-loaded EP ranks (0 = off). */
  epReplicas: z.coerce.number().int().min(0).default(0),
  /** Steps of a layer between replica decisions. */
  epRebalanceEvery: z.coerce.number().int().positive().default(200),
  expertGrouping: z.boolean().default(true),
  blockSize: z.coerce.number().int().positive().default(16),
  /** KV blocks; default: enough for `kvTokens` tokens. */
  kvBlocks: z.coerce.number().int().positive().optional(),
  kvTokens: z.coerce.number().int().positive().default(65536),
  maxBatchTokens: z.coerce.number().int().positive().default(512),
  maxRunning: z.coerce.number().int().positive().default(64),
  /** Sequences allowed to wait for admission; past it a request gets 503 (the edge then tries another pod). */
  maxWaiting: z.coerce.number().int().positive().default(512),
  maxBodyBytes: z.coerce.number().int().positive().default(4 * 1024 * 1024),
  drainTimeoutS: z.coerce.number().positive().default(300),
  /**
   * While an answer is in the making (queued, prefilling, generating JSON) the pod sends a keepalive this often:
   * a space before a JSON answer, an SSE comment in a stream. The edge counts a silent pod as stuck.
   */
  keepaliveMs: z.coerce.number().int().positive().default(5_000),
  /** Serve unsigned requests on a non-loopback address (`--allow-unsigned`): a trusted private network only. */
  allowUnsigned: z.preprocess(switchValue, z.boolean()).default(false),
});
export type PodOptions = z.infer<typeof PodOptionsSchema> & { servedModelName: string; podId: string; threads: number; kvBlocks: number; edgeSecrets: string[] };

/** Addresses only this machine can reach: a pod bound to one may run without the edge's secret (development). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

const FLAGS: Record<string, keyof z.infer<typeof PodOptionsSchema>> = {
  "--model": "model",
  "--host": "host",
  "--port": "port",
  "--served-model-name": "servedModelName",
  "--pod-id": "podId",
  "--backend": "backend",
  "--threads": "threads",
  "--pin-threads": "pinThreads",
  "--execution-providers": "executionProviders",
  "--ep": "ep",
  "--ep-replicas": "epReplicas",
  "--ep-rebalance-every": "epRebalanceEvery",
  "--block-size": "blockSize",
  "--kv-blocks": "kvBlocks",
  "--kv-tokens": "kvTokens",
  "--max-batch-tokens": "maxBatchTokens",
  "--max-running": "maxRunning",
  "--max-waiting": "maxWaiting",
  "--max-body-bytes": "maxBodyBytes",
  "--drain-timeout-s": "drainTimeoutS",
  "--keepalive-ms": "keepaliveMs",
};

export function parsePodOptions(argv: string[], env: NodeJS.ProcessEnv = {}, usableCpus: () => number = usableCpuCount): PodOptions {
  const raw: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(FLAGS)) {
    const envName = `POD_${flag.slice(2).replace(/-/g, "_").toUpperCase()}`;
    if (env[envName] !== undefined) raw[key] = env[envName];
  }
  if (env.POD_ALLOW_UNSIGNED !== undefined) raw.allowUnsigned = env.POD_ALLOW_UNSIGNED;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--no-expert-grouping") raw.expertGrouping = false;
    else if (a === "--allow-unsigned") raw.allowUnsigned = true;
    else if (a === "--no-pin-threads") raw.pinThreads = false;
    else if (a.startsWith("--")) {
      const [flag, inline] = a.split("=", 2) as [string, string | undefined];
      const key = FLAGS[flag];
      if (!key) throw new Error(`unknown option ${flag}`);
      const value = inline ?? argv[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      raw[key] = value;
    } else throw new Error(`unexpected argument ${a}`);
  }
  const r = PodOptionsSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`${String(i.path[0] ?? "options")}: ${i.message}`);
  }
  const o = r.data;
  // Secrets come from the environment only: a flag would show them to anyone who can list processes. During a
  // rotation POD_EDGE_SECRET_PREVIOUS is accepted too, until the edge signs with the new one (docs/deploy.md).
  const edgeSecret = env.POD_EDGE_SECRET || undefined;
  if (!edgeSecret && env.POD_EDGE_SECRET_PREVIOUS) throw new Error("POD_EDGE_SECRET_PREVIOUS is set without POD_EDGE_SECRET.");
  if (!edgeSecret && !o.allowUnsigned && !isLoopbackHost(o.host)) {
    throw new Error(
      `POD_EDGE_SECRET is not set and the pod would listen on ${o.host}: anyone who reaches it could use it under any tenant. ` +
        "Set POD_EDGE_SECRET (the edge's POD_SHARED_SECRET), listen on a loopback address, or pass --allow-unsigned on a trusted network.",
    );
  }
  const servedModelName = o.servedModelName ?? basename(resolve(o.model));
  return {
    ...o,
    servedModelName,
    podId: o.podId ?? `pod-${o.port}`,
    threads: o.threads ?? usableCpus(),
    kvBlocks: o.kvBlocks ?? Math.ceil(o.kvTokens / o.blockSize),
    edgeSecrets: edgeSecret ? [edgeSecret, ...(env.POD_EDGE_SECRET_PREVIOUS ? [env.POD_EDGE_SECRET_PREVIOUS] : [])] : [],
  };
}
