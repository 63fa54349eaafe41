import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeTinyModel } from "../gpu-backend/tools/write-tiny-model.js";

/** `npm run model:tiny [-- --out DIR]`: the deterministic demo checkpoint used by `npm start` and the tests. */
const { values } = parseArgs({ options: { out: { type: "string", default: "models/tiny-v3" } } });
const dir = resolve(values.out!);
writeTinyModel(dir);
console.log(`wrote the tiny DeepSeek-V3 demo checkpoint to ${dir}`);
