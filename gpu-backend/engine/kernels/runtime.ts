import type * as OrtCommon from "onnxruntime-common";
import { poolAffinities } from "./cpu-affinity.js";
import { allowedCpus } from "./host-cpus.js";

/**
 * One switch between the two onnxruntime builds: `node` (native, CPU or CUDA EP) and `web` (wasm, SIMD,
 * threads). Both run the same graphs; the engine never touches an onnxruntime API outside this file.
 */
export type BackendName = "node" | "web";

export interface RuntimeOptions {
  backend: BackendName;
  /** Intra-op threads for `pooled` and `streaming` sessions. */
  threads?: number;
  /** Native only: execution providers in preference order, e.g. ["cuda", "cpu"] on GPU hosts. */
  executionProviders?: string[];
  /**
   * Native only (default true): pin each pool's workers to their own CPUs, leaving the first allowed CPU to
   * the calling thread. Unpinned, a second thread gave decode attention nothing inside a step (though it did
   * in isolation); pinned, with attention on a spinning pool, decode steps were 5–10% faster (1 and 32
   * streams, in-process A/B on a 2-core VM). Turn it off where the pod shares its CPUs with busy processes.
   */
  pinThreads?: boolean;
}

export interface Feed {
  data: Float32Array | BigInt64Array;
  dims: readonly number[];
}

export interface KernelSession {
  /**
   * Runs the graph. Native backend: outputs named in `into` are written into those arrays (sized for their
   * dims) and returned as them, so a large output allocates nothing. Everything else, and every output of the
   * wasm backend (which does not write into given tensors), comes back in fresh arrays. With `outputs`, only
   * those come back: onnxruntime-node copies every fetched output into a fresh JavaScript buffer, even one
   * written in place (0.2–0.45 ms a MB, measured on MB-sized outputs), so an output nobody reads should not be
   * fetched.
   */
  run(feeds: Record<string, Feed>, into?: Record<string, Feed & { data: Float32Array }>, outputs?: readonly string[]): Promise<Record<string, Float32Array>>;
  release(): Promise<void>;
}

/**
 * How a session uses threads (measured on the benchmark model, native build):
 * - `pooled`: a thread pool that sleeps between kernels — few large kernels per run (lm_head).
 * - `single`: the calling thread only — short runs where waking a pool costs more than it gives (single-expert
 *   GEMVs of the per-token baseline).
 * - `streaming`: a pool that spins between kernels for the length of a run and stops at its end — many small or
 *   medium kernels back to back (a layer's block, a layer's expert group), where sleeping workers would wake for
 *   every one; prefill chunks, a few large GEMMs among them, ran as fast on it as on a sleeping pool.
 *   Spinning is never left on after a run: with many sessions on few cores it starves the others (5× slower).
 */
export type SessionKind = "pooled" | "single" | "streaming";

export interface KernelRuntime {
  readonly backend: BackendName;
  createSession(model: Uint8Array, kind?: SessionKind): Promise<KernelSession>;
}

type Ort = typeof OrtCommon;

async function loadOrt(backend: BackendName, threads: number): Promise<Ort> {
  if (backend === "node") return (await import("onnxruntime-node")) as unknown as Ort;
  const web = (await import("onnxruntime-web")) as unknown as Ort;
  web.env.wasm.numThreads = threads;
  web.env.wasm.simd = true;
  return web;
}

export async function createRuntime(opts: RuntimeOptions): Promise<KernelRuntime> {
  const threads = opts.threads ?? 2;
  const ort = await loadOrt(opts.backend, threads);
  const affinities = opts.backend === "node" && (opts.pinThreads ?? true) ? poolAffinities(allowedCpus(), threads) : null;
  const sessionOptions = (kind: SessionKind): OrtCommon.InferenceSession.SessionOptions => ({
    graphOptimizationLevel: "all",
    executionMode: "sequential",
    // A memory pattern is planned per set of input shapes and laid out as one block on the shapes' second
    // run. Ours change every step (batch size, past length, chunk sizes), so patterns are rarely reused and
    // their fresh blocks cost page faults. Without them: prefill steps lose a 2× second-run spike, decode
    // steps are 2–10% faster, and a pod's 32 streams ~10% (mean of five interleaved runs, 2-core VM).
    enableMemPattern: false,
    ...(opts.backend === "node"
      ? {
          intraOpNumThreads: kind === "single" ? 1 : threads,
          interOpNumThreads: 1,
          executionProviders: opts.executionProviders ?? ["cpu"],
          extra: {
            session: {
              intra_op: { allow_spinning: kind === "streaming" ? "1" : "0" },
              force_spinning_stop: "1",
              ...(affinities && kind !== "single" ? { intra_op_thread_affinities: affinities } : {}),
            },
          },
        }
      : { executionProviders: ["wasm"] }),
  });
  return {
    backend: opts.backend,
    async createSession(model, kind = "pooled") {
      const session = await ort.InferenceSession.create(model, sessionOptions(kind));
      return {
        async run(feeds, given, outputs = session.outputNames) {
          const into = opts.backend === "node" ? given : undefined;
          const inputs: Record<string, OrtCommon.Tensor> = {};
          for (const [name, f] of Object.entries(feeds)) {
            inputs[name] = new ort.Tensor(f.data instanceof BigInt64Array ? "int64" : "float32", f.data, f.dims);
          }
          let out: OrtCommon.InferenceSession.ReturnType;
          if (into) {
            // The ones with a buffer are written into it, the others (null) freshly allocated.
            const fetches: Record<string, OrtCommon.Tensor | null> = Object.fromEntries(outputs.map((n) => [n, null]));
            for (const [name, f] of Object.entries(into)) if (name in fetches) fetches[name] = new ort.Tensor("float32", f.data, f.dims);
            out = await session.run(inputs, fetches);
          } else out = await session.run(inputs, [...outputs]);
          const result: Record<string, Float32Array> = {};
          for (const [name, t] of Object.entries(out)) result[name] = into?.[name]?.data ?? (t.data as Float32Array);
          return result;
        },
        release: () => session.release(),
      };
    },
  };
}
