import type * as OrtCommon from "onnxruntime-common";

/**
 * One switch between the two onnxruntime builds: `node` (native, CPU or CUDA EP) and `web` (wasm, SIMD,
 * threads). Both run the same graphs; the engine never touches an onnxruntime API outside this file.
 */
export type BackendName = "node" | "web";

export interface RuntimeOptions {
  backend: BackendName;
  /** Intra-op threads for large kernels (attention blocks, lm_head); expert kernels use one each. */
  threads?: number;
  /** Native only: execution providers in preference order, e.g. ["cuda", "cpu"] on GPU hosts. */
  executionProviders?: string[];
}

export interface Feed {
  data: Float32Array | BigInt64Array;
  dims: readonly number[];
}

export interface KernelSession {
  run(feeds: Record<string, Feed>): Promise<Record<string, Float32Array>>;
  release(): Promise<void>;
}

export interface KernelRuntime {
  readonly backend: BackendName;
  /** `small`: a kernel whose runs are too short to gain from a thread pool (expert GEMVs). */
  createSession(model: Uint8Array, kind?: "large" | "small"): Promise<KernelSession>;
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
  const baseOptions = (intra: number): OrtCommon.InferenceSession.SessionOptions => ({
    graphOptimizationLevel: "all",
    executionMode: "sequential",
    ...(opts.backend === "node"
      ? {
          intraOpNumThreads: intra,
          interOpNumThreads: 1,
          executionProviders: opts.executionProviders ?? ["cpu"],
          // Many sessions share few cores: spinning pool threads starve each other (measured: 5× slower).
          extra: { session: { intra_op: { allow_spinning: "0" } } },
        }
      : { executionProviders: ["wasm"] }),
  });
  return {
    backend: opts.backend,
    async createSession(model, kind = "large") {
      const session = await ort.InferenceSession.create(model, baseOptions(kind === "small" ? 1 : threads));
      return {
        async run(feeds) {
          const inputs: Record<string, OrtCommon.Tensor> = {};
          for (const [name, f] of Object.entries(feeds)) {
            inputs[name] = new ort.Tensor(f.data instanceof BigInt64Array ? "int64" : "float32", f.data, f.dims);
          }
          const out = await session.run(inputs);
          const result: Record<string, Float32Array> = {};
          for (const [name, t] of Object.entries(out)) result[name] = t.data as Float32Array;
          return result;
        },
        release: () => session.release(),
      };
    },
  };
}
