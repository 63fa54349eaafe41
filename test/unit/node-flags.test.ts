import { describe, expect, it } from "vitest";
import { missingNodeFlags, POD_NODE_FLAGS } from "../../gpu-backend/server/node-flags.js";

describe("the pod's node heap flags", () => {
  it("names each flag a node was started without, whatever value the others were given", () => {
    expect(missingNodeFlags([...POD_NODE_FLAGS, "--import", "tsx"])).toEqual([]);
    expect(missingNodeFlags(["--import", "tsx"])).toEqual(["--initial-heap-size", "--max-semi-space-size"]);
    expect(missingNodeFlags(["--initial-heap-size=512"])).toEqual(["--max-semi-space-size"]);
  });
});
