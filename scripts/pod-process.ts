import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { POD_NODE_FLAGS } from "../gpu-backend/server/node-flags.js";

export interface PodProcess {
  url: string;
  port: number;
  proc: ChildProcess;
  /** Lines the pod printed (JSON logs). */
  logs: string[];
  /** Sends a signal and waits for exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * How a pod is started, here and in the container image (infra/docker/pod.Dockerfile's ENTRYPOINT), with the
 * heap sizes of `POD_NODE_FLAGS`.
 */
export const POD_COMMAND = ["node", ...POD_NODE_FLAGS, "--import", "tsx", "gpu-backend/server/main.ts"] as const;

/** Starts a real pod process and resolves once it logs "ready". */
export function startPod(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<PodProcess> {
  const proc = spawn(process.execPath, [...POD_COMMAND.slice(1), "--port", "0", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`pod did not become ready in ${timeoutMs} ms:\n${logs.join("\n")}`));
    }, timeoutMs);
    createInterface({ input: proc.stderr! }).on("line", (l) => logs.push(l));
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      logs.push(line);
      let msg: { msg?: string; port?: number };
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      if (msg.msg === "ready" && msg.port) {
        clearTimeout(timer);
        resolve({
          url: `http://127.0.0.1:${msg.port}`,
          port: msg.port,
          proc,
          logs,
          stop: (signal = "SIGTERM") => {
            if (proc.exitCode === null) proc.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`pod exited with ${code} before ready:\n${logs.join("\n")}`));
    });
  });
}
