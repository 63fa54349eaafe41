import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Checkpoint } from "../../gpu-backend/engine/checkpoint.js";
import { buildHeadGraph } from "../../gpu-backend/engine/kernels/block-graph.js";
import { createRuntime, type KernelSession } from "../../gpu-backend/engine/kernels/runtime.js";
import { Rng } from "../../gpu-backend/engine/rng.js";
import { writeTinyModel } from "../../gpu-backend/tools/write-tiny-model.js";

let dir: string;
let head: Uint8Array;
let hidden: number;
let vocab: number;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "head-"));
  writeTinyModel(dir);
  const ckpt = new Checkpoint(dir);
  try {
    head = buildHeadGraph(ckpt.config, ckpt);
    ({ hidden, vocabSize: vocab } = ckpt.config);
  } finally {
    ckpt.close();
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each(["node", "web"] as const)("the head graph (%s)", (backend) => {
  it("computes only the outputs `needs` asks for, each the same whatever else is asked", async () => {
    const session: KernelSession = await (await createRuntime({ backend, threads: 2 })).createSession(head);
    try {
      const n = 3;
      const rng = new Rng(4);
      const x = Float32Array.from({ length: n * hidden }, () => rng.normal());
      const run = async (needs: number[]) => {
        const out = await session.run({
          x: { data: x, dims: [n, hidden] },
          inv_temp: { data: Float32Array.of(1, 1.5, 0.5), dims: [n, 1] },
          u: { data: Float32Array.of(0.1, 0.5, 0.9), dims: [n, 1] },
          needs: { data: Float32Array.from(needs), dims: [3] },
        });
        return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v]]));
      };
      const all = await run([1, 1, 1]);
      expect([all.logits!.length, all.probs!.length, all.token!.length]).toEqual([n * vocab, n * vocab, n]);
      const rows = (a: number[]) => Array.from({ length: n }, (_, r) => a.slice(r * vocab, (r + 1) * vocab));
      expect(all.argmax).toEqual(rows(all.logits!).map((l) => l.indexOf(Math.max(...l))));
      for (const needs of [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]]) {
        const out = await run(needs);
        expect(out.logits).toEqual(all.logits);
        expect(out.probs).toEqual(needs[0] ? all.probs : []);
        expect(out.token).toEqual(needs[0] && needs[1] ? all.token : []); // a draw needs the softmax
        expect(out.argmax).toEqual(needs[2] ? all.argmax : []);
      }
    } finally {
      await session.release();
    }
  });
});
