import { parentPort, workerData } from "node:worker_threads";
import { Checkpoint } from "../engine/checkpoint.js";
import { createRuntime } from "../engine/kernels/runtime.js";
import { ExpertShard } from "../engine/expert-shard.js";
import type { FromRank, RankInit, ToRank } from "./ep-protocol.js";

/**
 * An expert-parallel rank: a worker thread that owns the sessions (and so the weights) of its shard of
 * routed experts. Hidden states arrive in a shared buffer; outputs go back in another; only small task
 * lists cross as messages.
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
      await (m.type === "run" ? shard.run(m.tasks, input, output) : shard.load(m.layer, m.expert));
      post(m.type === "run" ? { type: "done", id: m.id } : { type: "loaded", id: m.id });
    } catch (e) {
      post({ type: "error", id: m.id, message: `rank ${init.rank}: ${e instanceof Error ? e.message : String(e)}` });
    }
  });
});
post({ type: "ready" });
