import type { ExpertPlan } from "../engine/expert-plan.js";

/** Messages between the pod's main thread and its expert-parallel rank workers (structured clone, no JSON). */

export interface RankInit {
  model: string;
  rank: number;
  backend: "node" | "web";
  /** `[layer, expert]` pairs this rank owns at start. */
  owned: [number, number][];
  grouped: boolean;
}

export type ToRank =
  /** `input` carries the step's post-attention states `[T, H]` (the same buffer for every rank), `output` the rank's `[T, H]` share back. */
  | { type: "buffers"; input: SharedArrayBuffer; output: SharedArrayBuffer }
  | { type: "run"; id: number; plan: ExpertPlan; tokens: number }
  | { type: "load"; id: number; layer: number; expert: number };

export type FromRank =
  | { type: "ready" }
  | { type: "done"; id: number }
  | { type: "loaded"; id: number }
  | { type: "error"; id: number; message: string };
