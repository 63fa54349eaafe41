import { describe, expect, it } from "vitest";
import { cgroupAncestors, cpuQuotaLimit, parseCgroupPlaces } from "../../gpu-backend/engine/kernels/cgroup-cpu.js";

describe("CPU limits of the pod's cgroup", () => {
  it("finds the unified path and v1's cpu hierarchy in /proc/self/cgroup", () => {
    expect(parseCgroupPlaces("0::/kubepods.slice/pod1/cri-abc\n")).toEqual({ v2: "/kubepods.slice/pod1/cri-abc" });
    // A v1 (hybrid) host: the cpu controller shares a hierarchy with cpuacct.
    const hybrid = "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n3:cpuset:/docker/x\n0::/\n";
    expect(parseCgroupPlaces(hybrid)).toEqual({ v2: "/", v1Cpu: { mount: "cpu,cpuacct", path: "/docker/x" } });
    expect(parseCgroupPlaces("")).toEqual({});
  });

  it("walks a cgroup path up to the root", () => {
    expect(cgroupAncestors("/a/b")).toEqual(["/a/b", "/a", "/"]);
    expect(cgroupAncestors("/")).toEqual(["/"]);
  });

  it("turns a CFS quota into whole CPUs, rounded down, and no quota into no limit", () => {
    expect(cpuQuotaLimit("max 100000\n")).toBeNull();
    expect(cpuQuotaLimit("400000 100000")).toBe(4);
    expect(cpuQuotaLimit("250000 100000")).toBe(2);
    expect(cpuQuotaLimit("50000 100000")).toBe(1); // half a CPU still runs one thread
    expect(cpuQuotaLimit("-1 100000")).toBeNull(); // v1: no quota
    expect(cpuQuotaLimit("")).toBeNull();
  });
});
