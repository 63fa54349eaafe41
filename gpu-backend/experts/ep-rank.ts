import { parentPort, workerData } from "node:worker_threads";
import { Checkpoint } from "../engine/checkpoint.js";
import { buildExpertGraph } from "../engine/kernels/block-graph.js";
import { createRuntime, type KernelSession } from "../engine/kernels/runtime.js";
import type { FromRank, RankInit, ToRank } from "./ep-protocol.js";

/**
 * An expert-parallel rank: a worker thread that owns the sessions (and so the weights) of its shard of
 * routed experts. Hidden states arrive in a shared buffer; outputs go back in another; only small task
 * lists cross as messages.
 */
const init = workerData as RankInit;
const port = parentPort!;
const post = (m: FromRank) => port.postMessage(m);

const runtime = await createRuntime({ backend: init.backend, threads: 1 });
const ckpt = new Checkpoint(init.model);
const cfg = ckpt.config;
const H = cfg.hidden;
const sessions = new Map<string, KernelSession>();
const load = async (layer: number, expert: number) => {
  sessions.set(`${layer}:${expert}`, await runtime.createSession(buildExpertGraph(cfg, ckpt, layer, expert), "small"));
};
for (const [l, e] of init.owned) await load(l, e);

let input: Float32Array<ArrayBufferLike> = new Float32Array(0);
let output: Float32Array<ArrayBufferLike> = new Float32Array(0);

async function run(tasks: [number, number, number, number][]): Promise<void> {
  for (const [layer, expert, row, n] of tasks) {
    const s = sessions.get(`${layer}:${expert}`);
    if (!s) throw new Error(`rank ${init.rank} does not hold expert ${expert} of layer ${layer}`);
    // Grouped: one run over the expert's whole slice. Per-token (baseline): one run per row.
    const step = init.grouped ? n : 1;
    for (let r = row; r < row + n; r += step) {
      const x = input.slice(r * H, (r + step) * H);
      const y = (await s.run({ x: { data: x, dims: [step, H] } })).y!;
      output.set(y, r * H);
    }
  }
}

port.on("message", (m: ToRank) => {
  if (m.type === "buffers") {
    input = new Float32Array(m.input);
    output = new Float32Array(m.output);
    return;
  }
  const job = m.type === "run" ? run(m.tasks) : load(m.layer, m.expert);
  job.then(
    () => post(m.type === "run" ? { type: "done", id: m.id } : { type: "loaded", id: m.id }),
    (e: unknown) => post({ type: "error", id: m.id, message: e instanceof Error ? e.message : String(e) }),
  );
});
post({ type: "ready" });
