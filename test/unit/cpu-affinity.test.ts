import { describe, expect, it } from "vitest";
import { parseCpuList, poolAffinities } from "../../gpu-backend/engine/kernels/cpu-affinity.js";
import { parsePodOptions } from "../../gpu-backend/server/options.js";

describe("CPU pinning of onnxruntime pools", () => {
  it("reads Linux CPU lists: single ids, ranges and gaps, in ascending order", () => {
    expect(parseCpuList("0-1\n")).toEqual([0, 1]);
    expect(parseCpuList("8,0-3,10-11")).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList("5")).toEqual([5]);
    expect(() => parseCpuList("0-x")).toThrow(/bad CPU list entry/);
    expect(() => parseCpuList("3-1")).toThrow(/bad CPU range/);
  });

  it("pins worker k to the (k+1)-th allowed CPU, numbered from 1, and leaves the first to the caller", () => {
    expect(poolAffinities([0, 1], 2)).toBe("2");
    expect(poolAffinities([0, 1, 2, 3], 4)).toBe("2;3;4");
    // A cpuset of CPUs 4, 6 and 9: workers go to 6 and 9 (onnxruntime's 7 and 10).
    expect(poolAffinities([4, 6, 9], 3)).toBe("7;10");
    expect(poolAffinities([0, 1, 2, 3], 2)).toBe("2");
  });

  it("does not pin a pool without workers, or more workers than the CPUs left", () => {
    expect(poolAffinities([0, 1], 1)).toBeNull();
    expect(poolAffinities([0, 1], 4)).toBeNull();
    expect(poolAffinities([], 2)).toBeNull();
  });

  it("pins by default; --no-pin-threads, --pin-threads false or POD_PIN_THREADS=false turn it off", () => {
    expect(parsePodOptions(["--model", "m"]).pinThreads).toBe(true);
    expect(parsePodOptions(["--model", "m", "--no-pin-threads"]).pinThreads).toBe(false);
    expect(parsePodOptions(["--model", "m", "--pin-threads", "false"]).pinThreads).toBe(false);
    expect(parsePodOptions(["--model", "m"], { POD_PIN_THREADS: "0" }).pinThreads).toBe(false);
    expect(parsePodOptions(["--model", "m"], { POD_PIN_THREADS: "true" }).pinThreads).toBe(true);
    expect(() => parsePodOptions(["--model", "m", "--pin-threads", "maybe"])).toThrow(/pinThreads/);
  });

  it("sizes pools by default to the CPUs the pod can use; --threads or POD_THREADS set them", () => {
    expect(parsePodOptions(["--model", "m"], {}, () => 12).threads).toBe(12);
    expect(parsePodOptions(["--model", "m", "--threads", "3"], {}, () => 12).threads).toBe(3);
    expect(parsePodOptions(["--model", "m"], { POD_THREADS: "4" }, () => 12).threads).toBe(4);
    expect(() => parsePodOptions(["--model", "m", "--threads", "0"])).toThrow(/threads/);
  });
});
