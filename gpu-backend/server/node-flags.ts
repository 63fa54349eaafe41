/**
 * V8 heap sizes (MB) a pod's node starts with; V8 takes them on the command line only, not from NODE_OPTIONS.
 * Measured on the bench model, 2-core VM, 6 interleaved rounds each, every round faster:
 * - `--initial-heap-size`: under V8's small default the pod's ~20 MB heap met its limit every few steps at 32
 *   streams, and each full collection (~5–8 ms, plus marking threads on the cores the step's pool spins on)
 *   stalled a step: 60 in one 32-stream run, none in four with it. 32 streams +16% tokens/s, 1 stream unchanged.
 * - `--max-semi-space-size`: a young generation that fills less often (fewer scavenges and their helper
 *   threads): +6% tokens/s at 32 streams and at 1; resident memory no higher after four 32-stream runs.
 */
export const POD_NODE_FLAGS = ["--initial-heap-size=256", "--max-semi-space-size=64"] as const;

/** The flags of `POD_NODE_FLAGS` that a node started with `execArgv` was not given (at any value). */
export function missingNodeFlags(execArgv: readonly string[]): string[] {
  return POD_NODE_FLAGS.map((f) => f.slice(0, f.indexOf("="))).filter((name) => !execArgv.some((a) => a.startsWith(name)));
}
