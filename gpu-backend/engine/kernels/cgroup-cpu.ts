// Reading a process's CPU quota from cgroup files (v1 and v2); the files are read in host-cpus.ts.

/** Where this process sits in each cgroup hierarchy (/proc/self/cgroup): the unified (v2) path, and v1's `cpu` controller's. */
export interface CgroupPlaces {
  v2?: string;
  /** The v1 hierarchy holding the `cpu` controller: its mount name (e.g. "cpu,cpuacct") and the process's path in it. */
  v1Cpu?: { mount: string; path: string };
}

/** Parses /proc/self/cgroup ("id:controllers:path" per line). */
export function parseCgroupPlaces(text: string): CgroupPlaces {
  const places: CgroupPlaces = {};
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, controllers, path] = m as unknown as [string, string, string, string];
    if (id === "0" && controllers === "") places.v2 = path;
    else if (controllers.split(",").includes("cpu")) places.v1Cpu = { mount: controllers, path };
  }
  return places;
}

/** A cgroup path and each of its ancestors up to the root ("/a/b" → ["/a/b", "/a", "/"]). */
export function cgroupAncestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  return Array.from({ length: parts.length + 1 }, (_, i) => "/" + parts.slice(0, parts.length - i).join("/"));
}

/**
 * Whole CPUs a CFS quota allows (at least 1), or null for no limit: v2's cpu.max ("max 100000", "250000 100000")
 * or v1's cfs_quota_us and cfs_period_us joined by a space (a quota of -1 is no limit). Rounded down: a pool
 * with more spinning threads than the quota would be throttled in every period.
 */
export function cpuQuotaLimit(quotaAndPeriod: string): number | null {
  const [quota, period] = quotaAndPeriod.trim().split(/\s+/);
  if (quota === undefined || quota === "max" || quota === "-1") return null;
  const q = Number(quota);
  const p = Number(period ?? 100_000);
  if (!(q > 0) || !(p > 0)) return null;
  return Math.max(1, Math.floor(q / p));
}
