import { parentPort, workerData } from "node:worker_threads";
import { Checkpoint } from "../engine/checkpoint.js";
import { ExpertGroup } from "../engine/expert-group.js";
import { buildExpertGraph } from "../engine/kernels/block-graph.js";
import { createRuntime, type KernelSession } from "../engine/kernels/runtime.js";
import type { ExpertTask, FromRank, RankInit, ToRank } from "./ep-protocol.js";

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

// Grouped: one fused session per layer over the experts held here, rebuilt when a replica arrives.
// Per-token (baseline): one session per expert, one run per row.
const held = new Map<number, Set<number>>();
const groups = new Map<number, ExpertGroup>();
const sessions = new Map<string, KernelSession>();
for (const [l, e] of init.owned) {
  if (!held.has(l)) held.set(l, new Set());
  held.get(l)!.add(e);
}
async function build(layer: number): Promise<void> {
  const experts = held.get(layer)!;
  if (init.grouped) {
    const previous = groups.get(layer);
    groups.set(layer, await ExpertGroup.create(runtime, ckpt, cfg, layer, experts));
    await previous?.release();
    return;
  }
  for (const e of experts) {
    const key = `${layer}:${e}`;
    if (!sessions.has(key)) sessions.set(key, await runtime.createSession(buildExpertGraph(cfg, ckpt, layer, e), "single"));
  }
}
for (const layer of held.keys()) await build(layer);

async function load(layer: number, expert: number): Promise<void> {
  if (!held.has(layer)) held.set(layer, new Set());
  held.get(layer)!.add(expert);
  await build(layer);
}

let input: Float32Array<ArrayBufferLike> = new Float32Array(0);
let output: Float32Array<ArrayBufferLike> = new Float32Array(0);

/** Tasks name consecutive row ranges of the input buffer, one layer per run, in ascending expert order. */
async function run(tasks: ExpertTask[]): Promise<void> {
  if (tasks.length === 0) return;
  const layer = tasks[0]![0];
  const rows = tasks.reduce((a, t) => a + t[3], 0);
  const group = groups.get(layer);
  if (group) {
    if (tasks.some((t) => t[0] !== layer)) throw new Error("one run carries one layer's tasks");
    const y = await group.run(input.slice(tasks[0]![2] * H, (tasks[0]![2] + rows) * H), tasks.map(([, expert, , n]) => ({ expert, n })), H);
    output.set(y, tasks[0]![2] * H);
    return;
  }
  for (const [l, expert, row, n] of tasks) {
    const s = sessions.get(`${l}:${expert}`);
    if (!s) throw new Error(`rank ${init.rank} does not hold expert ${expert} of layer ${l}`);
    for (let r = row; r < row + n; r++) output.set((await s.run({ x: { data: input.slice(r * H, (r + 1) * H), dims: [1, H] } })).y!, r * H);
  }
}

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
      await (m.type === "run" ? run(m.tasks) : load(m.layer, m.expert));
      post(m.type === "run" ? { type: "done", id: m.id } : { type: "loaded", id: m.id });
    } catch (e) {
      post({ type: "error", id: m.id, message: e instanceof Error ? e.message : String(e) });
    }
  });
});
post({ type: "ready" });
