import type { TestProject } from "vitest/node";
import { startScriptedUpstream } from "../support/scripted-upstream.js";

export default async function setup(project: TestProject) {
  const upstream = await startScriptedUpstream();
  project.provide("upstreamUrl", upstream.url);
  return () => upstream.close();
}
