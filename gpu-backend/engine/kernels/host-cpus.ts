import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { cgroupAncestors, cpuQuotaLimit, parseCgroupPlaces } from "./cgroup-cpu.js";
import { parseCpuList } from "./cpu-affinity.js";

const read = (path: string): string | null => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
};

/** The CPUs this process may run on (Linux: its affinity mask); empty where that cannot be read. */
export function allowedCpus(): number[] {
  const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(read("/proc/self/status") ?? "");
  try {
    return line ? parseCpuList(line[1]!) : [];
  } catch {
    return [];
  }
}

/**
 * The CPU limit of this process's cgroup and its ancestors (in a container: e.g. a Kubernetes CPU limit), in
 * whole CPUs; null where there is none or it cannot be read.
 */
export function cgroupCpuLimit(): number | null {
  const places = parseCgroupPlaces(read("/proc/self/cgroup") ?? "");
  const limits: number[] = [];
  const add = (limit: number | null) => limit !== null && limits.push(limit);
  if (places.v2 !== undefined && existsSync("/sys/fs/cgroup/cgroup.controllers")) {
    for (const dir of cgroupAncestors(places.v2)) add(cpuQuotaLimit(read(`/sys/fs/cgroup${dir}/cpu.max`) ?? "max"));
  }
  if (places.v1Cpu) {
    const mount = [places.v1Cpu.mount, "cpu"].map((m) => `/sys/fs/cgroup/${m}`).find((m) => existsSync(m));
    for (const dir of mount ? cgroupAncestors(places.v1Cpu.path) : []) {
      const quota = read(`${mount}${dir}/cpu.cfs_quota_us`);
      const period = read(`${mount}${dir}/cpu.cfs_period_us`);
      if (quota !== null && period !== null) add(cpuQuotaLimit(`${quota.trim()} ${period.trim()}`));
    }
  }
  return limits.length > 0 ? Math.min(...limits) : null;
}

/** The CPUs this process can keep busy: those it may run on, within its cgroup's CPU limit. */
export function usableCpuCount(): number {
  const cpus = allowedCpus().length || availableParallelism();
  const limit = cgroupCpuLimit();
  return Math.max(1, limit === null ? cpus : Math.min(cpus, limit));
}
