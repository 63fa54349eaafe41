import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { writeTinyModel } from "../../gpu-backend/tools/write-tiny-model.js";

/** One freshly generated demo checkpoint for every pod and end-to-end test of the run. */
export default function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), "tiny-model-"));
  writeTinyModel(dir);
  project.provide("tinyModelDir", dir);
  return () => rmSync(dir, { recursive: true, force: true });
}

declare module "vitest" {
  export interface ProvidedContext {
    tinyModelDir: string;
  }
}
