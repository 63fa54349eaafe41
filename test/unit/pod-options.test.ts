import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { isLoopbackHost, parsePodOptions } from "../../gpu-backend/server/options.js";
import { POD_COMMAND } from "../../scripts/pod-process.js";

const on = (host: string, env: NodeJS.ProcessEnv = {}, extra: string[] = []) => parsePodOptions(["--model", "m", "--host", host, ...extra], env);

describe("pod options: unsigned requests only where no one else can reach the pod", () => {
  it("tells loopback addresses from the others", () => {
    for (const h of ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "::1", "[::1]", "::ffff:127.0.0.1"]) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "[::]", "10.0.0.5", "192.168.1.2", "pod.internal", "127.0.0.1.example", "::ffff:10.0.0.1", "128.0.0.1"]) expect(isLoopbackHost(h), h).toBe(false);
  });

  it("refuses to listen beyond loopback without the edge's secret", () => {
    expect(parsePodOptions(["--model", "m"]).edgeSecrets).toEqual([]); // default host 127.0.0.1
    expect(() => on("0.0.0.0")).toThrow(/POD_EDGE_SECRET is not set and the pod would listen on 0\.0\.0\.0/);
    expect(() => on("10.0.0.5", { POD_ALLOW_UNSIGNED: "false" })).toThrow(/--allow-unsigned/);
    expect(() => parsePodOptions(["--model", "m"], { POD_HOST: "::" })).toThrow(/POD_EDGE_SECRET/);
  });

  it("listens anywhere with the secret (from the environment only), or when unsigned requests are allowed outright", () => {
    expect(on("0.0.0.0", { POD_EDGE_SECRET: "s" }).edgeSecrets).toEqual(["s"]);
    expect(on("0.0.0.0", { POD_EDGE_SECRET: "" }, ["--allow-unsigned"]).edgeSecrets).toEqual([]);
    expect(on("0.0.0.0", { POD_ALLOW_UNSIGNED: "true" }).allowUnsigned).toBe(true);
    expect(() => on("127.0.0.1", {}, ["--edge-secret", "s"])).toThrow(/unknown option --edge-secret/);
  });

  it("accepts the previous secret beside the current one during a rotation, never on its own", () => {
    expect(on("0.0.0.0", { POD_EDGE_SECRET: "new", POD_EDGE_SECRET_PREVIOUS: "old" }).edgeSecrets).toEqual(["new", "old"]);
    expect(() => on("0.0.0.0", { POD_EDGE_SECRET_PREVIOUS: "old" })).toThrow(/POD_EDGE_SECRET_PREVIOUS is set without POD_EDGE_SECRET/);
    expect(() => on("127.0.0.1", { POD_EDGE_SECRET_PREVIOUS: "old" })).toThrow(/without POD_EDGE_SECRET/);
  });

  it("the pod process exits at once, saying why, instead of serving unauthenticated", () => {
    const { POD_EDGE_SECRET, POD_EDGE_SECRET_PREVIOUS, POD_ALLOW_UNSIGNED, ...env } = process.env;
    const r = spawnSync(process.execPath, [...POD_COMMAND.slice(1), "--model", "no-such-model", "--host", "0.0.0.0", "--port", "0"], { env, encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/POD_EDGE_SECRET is not set/);
    expect(r.stdout).not.toMatch(/"ready"/);
  });
});
