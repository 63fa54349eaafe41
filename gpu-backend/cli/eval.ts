import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { GoldenSchema, evaluateGolden } from "../engine/golden.js";
import { DeepSeekModel } from "../engine/model.js";

/**
 * `npm run -s engine:eval -- --model DIR [--weights FILE] --golden FILE [--backend node|web] [--tolerance X]`
 * Prints one JSON object; exit code 0 only when the engine matches the golden outputs.
 */
const { values } = parseArgs({
  options: {
    model: { type: "string" },
    weights: { type: "string" },
    golden: { type: "string" },
    backend: { type: "string", default: "node" },
    threads: { type: "string" },
    tolerance: { type: "string", default: "1e-4" },
  },
});

async function main(): Promise<number> {
  if (!values.model || !values.golden) {
    console.error("usage: engine:eval -- --model DIR [--weights FILE] --golden FILE [--backend node|web] [--tolerance 1e-4]");
    return 2;
  }
  const backend = values.backend === "web" ? "web" : values.backend === "node" ? "node" : null;
  if (!backend) {
    console.error(`unknown backend '${values.backend}' (node | web)`);
    return 2;
  }
  const golden = GoldenSchema.parse(JSON.parse(readFileSync(values.golden, "utf8")));
  const started = performance.now();
  const model = await DeepSeekModel.load(values.model, {
    backend,
    ...(values.weights ? { weightsFile: values.weights } : {}),
    ...(values.threads ? { threads: Number(values.threads) } : {}),
    onProgress: (line) => console.error(line),
  });
  const report = await evaluateGolden(model, golden, Number(values.tolerance));
  await model.close();
  console.log(JSON.stringify({ backend, weights: values.weights ?? null, ...report, seconds: +((performance.now() - started) / 1000).toFixed(2) }, null, 2));
  return report.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(2);
  },
);
