import type { ExpertTask } from "../engine/expert-shard.js";

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
  | { type: "buffers"; input: SharedArrayBuffer; output: SharedArrayBuffer }
  | { type: "run"; id: number; tasks: ExpertTask[] }
  | { type: "load"; id: number; layer: number; expert: number };

export type FromRank =
  | { type: "ready" }
  | { type: "done"; id: number }
  | { type: "loaded"; id: number }
  | { type: "error"; id: number; message: string };
