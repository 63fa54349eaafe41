/** Messages between the pod's main thread and its expert-parallel rank workers (structured clone, no JSON). */

export interface RankInit {
  model: string;
  rank: number;
  backend: "node" | "web";
  /** `[layer, expert]` pairs this rank owns at start. */
  owned: [number, number][];
  grouped: boolean;
}

/** One expert's slice of a rank's shared input/output buffers: rows [row, row + n). */
export type ExpertTask = [layer: number, expert: number, row: number, n: number];

export type ToRank =
  | { type: "buffers"; input: SharedArrayBuffer; output: SharedArrayBuffer }
  | { type: "run"; id: number; tasks: ExpertTask[] }
  | { type: "load"; id: number; layer: number; expert: number };

export type FromRank =
  | { type: "ready" }
  | { type: "done"; id: number }
  | { type: "loaded"; id: number }
  | { type: "error"; id: number; message: string };
