import { parentPort, workerData } from "node:worker_threads";
import { Checkpoint } from "../engine/checkpoint.js";
import { createRuntime } from "../engine/kernels/runtime.js";
import { ExpertShard } from "../engine/expert-shard.js";
import type { FromRank, RankInit, ToRank } from "./ep-protocol.js";

/**
 * An expert-parallel rank: a worker thread that owns the sessions (and so the weights) of its shard of
 * routed experts. The step's hidden states arrive in a shared buffer; its share of the layer's output goes
 * back in another; only the plan (rows, gate weights, tasks) crosses as a message.
 */
const init = workerData as RankInit;
const port = parentPort!;
const post = (m: FromRank) => port.postMessage(m);

const ckpt = new Checkpoint(init.model);
const shard = await ExpertShard.create(await createRuntime({ backend: init.backend, threads: 1 }), ckpt, ckpt.config, init.owned, init.grouped);
let input: Float32Array<ArrayBufferLike> = new Float32Array(0);
let output: Float32Array<ArrayBufferLike> = new Float32Array(0);

// Messages are handled one at a time, in order: a replica load rebuilds a layer's session and new buffers
// replace the old ones, and neither may happen under a run.
let jobs: Promise<unknown> = Promise.resolve();
port.on("message", (m: ToRank) => {
  jobs = jobs.then(async () => {
    if (m.type === "buffers") {
      input = new Float32Array(m.input);
      output = new Float32Array(m.output);
      return;
    }
    try {
      if (m.type === "run") {
        const n = m.tokens * ckpt.config.hidden;
        output.set(await shard.run(m.plan, input.subarray(0, n), null));
        post({ type: "done", id: m.id });
      } else {
        await shard.load(m.layer, m.expert);
        post({ type: "loaded", id: m.id });
      }
    } catch (e) {
      post({ type: "error", id: m.id, message: `rank ${init.rank}: ${e instanceof Error ? e.message : String(e)}` });
    }
  });
});
post({ type: "ready" });
