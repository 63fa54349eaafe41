/** Parses a Linux CPU list (`Cpus_allowed_list` in /proc/self/status, e.g. "0-3,8,10-11") into ascending CPU ids. */
export function parseCpuList(list: string): number[] {
  const cpus = new Set<number>();
  for (const part of list.trim().split(",")) {
    if (part === "") continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`bad CPU list entry "${part}"`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`bad CPU range "${part}"`);
    for (let c = lo; c <= hi; c++) cpus.add(c);
  }
  return [...cpus].sort((a, b) => a - b);
}

/**
 * onnxruntime's `session.intra_op_thread_affinities` for a pool of `threads` (the calling thread plus
 * `threads − 1` workers): worker k on the (k+1)-th CPU this process may use, leaving the first to the caller.
 * onnxruntime numbers processors from 1. Null when the pool has no workers or there are fewer CPUs than threads
 * (pinning would then stack workers on one CPU).
 */
export function poolAffinities(allowed: readonly number[], threads: number): string | null {
  if (threads < 2 || allowed.length < threads) return null;
  return allowed
    .slice(1, threads)
    .map((cpu) => String(cpu + 1))
    .join(";");
}
