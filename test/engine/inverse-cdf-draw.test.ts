import { describe, expect, it } from "vitest";
import { inverseCdfDraw } from "../../gpu-backend/engine/kernels/layers.js";
import { createRuntime, type BackendName } from "../../gpu-backend/engine/kernels/runtime.js";
import { GraphBuilder } from "../../gpu-backend/engine/onnx/graph.js";
import { Rng } from "../../gpu-backend/engine/rng.js";

/** The sampler's walk: the first token at which u × total is used up (the last one if rounding runs past it). */
function walk(row: Float32Array, u: number): number {
  let total = 0;
  for (const p of row) total += p;
  let left = u * total;
  for (let i = 0; i < row.length; i++) if ((left -= row[i]!) <= 0) return i;
  return row.length - 1;
}

async function drawSession(backend: BackendName, vocab: number, block: number) {
  const g = new GraphBuilder("draw");
  const probs = g.input("probs", ["n", vocab]);
  const u = g.input("u", ["n", 1]);
  g.output(inverseCdfDraw(g, probs, u, vocab, block), "token", ["n"]);
  return (await createRuntime({ backend, threads: 2 })).createSession(g.build());
}

describe.each(["node", "web"] as const)("the head's inverse-CDF draw (%s)", (backend) => {
  // 1000 tokens in blocks of 128 pads the last block; 1024 fills it.
  it.each([[1000, 128], [1024, 128], [7, 4]])("draws the token the sampler's walk would (vocabulary %i, blocks of %i)", async (V, block) => {
    const session = await drawSession(backend, V, block);
    const rng = new Rng(V);
    const n = 64;
    const probs = new Float32Array(n * V);
    const u = new Float32Array(n);
    for (let r = 0; r < n; r++) {
      const row = probs.subarray(r * V, (r + 1) * V);
      // Peaked, flat, and with zero runs (tokens that can never be drawn), unnormalised.
      for (let i = 0; i < V; i++) row[i] = r % 3 === 0 ? Math.exp(8 * rng.normal()) : r % 3 === 1 ? rng.uniform() : rng.uniform() < 0.7 ? 0 : rng.uniform();
      row[r % V] ||= 0.5; // a softmax is never all zeros
      u[r] = r === 0 ? 0 : r === 1 ? 1 - 2 ** -24 : rng.uniform();
    }
    const { token } = await session.run({ probs: { data: probs, dims: [n, V] }, u: { data: u, dims: [n, 1] } });
    const want = Array.from({ length: n }, (_, r) => walk(probs.subarray(r * V, (r + 1) * V), u[r]!));
    expect([...token!]).toEqual(want);
    // Zero-probability tokens are never drawn (row 0's u = 0 takes the first token, as the walk does).
    for (let r = 1; r < n; r++) expect(probs[r * V + want[r]!]).toBeGreaterThan(0);
    await session.release();
  });
});
