import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TextCodec } from "../../gpu-backend/engine/tokenizer.js";
import { Rng } from "../../gpu-backend/engine/rng.js";
import { SPECIAL } from "../../gpu-backend/tools/tokenizer-files.js";
import { writeTinyModel } from "../../gpu-backend/tools/write-tiny-model.js";

let dir: string;
let codec: TextCodec;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tok-"));
  writeTinyModel(dir);
  codec = TextCodec.load(dir, [1]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Random strings over every UTF-8 length class, controls and astral characters included. */
function randomText(rng: Rng, n: number): string {
  const ranges: [number, number][] = [[0x00, 0x7f], [0x80, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xfffd], [0x10000, 0x10ffff]];
  let s = "";
  for (let i = 0; i < n; i++) {
    const [lo, hi] = ranges[Math.floor(rng.uniform() * ranges.length)]!;
    s += String.fromCodePoint(lo + Math.floor(rng.uniform() * (hi - lo + 1)));
  }
  return s;
}

describe("byte-level BPE (tiny demo tokenizer)", () => {
  it("round-trips arbitrary UTF-8 text", () => {
    const rng = new Rng(11);
    for (let i = 0; i < 200; i++) {
      const s = randomText(rng, 1 + Math.floor(rng.uniform() * 40));
      expect(codec.decode(codec.encode(s, { addBos: false }), { skipSpecial: false })).toBe(s);
    }
  });

  it("merges common words into single tokens", () => {
    expect(codec.encode(" the", { addBos: false })).toHaveLength(1);
    expect(codec.encode("The quick brown fox", { addBos: false }).length).toBeLessThan(8);
  });

  it("recognises special tokens and adds BOS on request", () => {
    const bos = codec.tokenId(SPECIAL.bos)!;
    expect(bos).toBe(0);
    expect(codec.encode("hi")[0]).toBe(bos);
    expect(codec.encode("hi", { addBos: false })[0]).not.toBe(bos);
    const ids = codec.encode(`${SPECIAL.user}hi${SPECIAL.assistant}`, { addBos: false });
    expect(ids[0]).toBe(codec.tokenId(SPECIAL.user));
    expect(ids.at(-1)).toBe(codec.tokenId(SPECIAL.assistant));
    expect(codec.eosIds).toContain(1);
  });

  it("renders the chat template", () => {
    const text = codec.renderChat([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello." },
      { role: "user", content: "Bye" },
    ]);
    expect(text).toBe(`${SPECIAL.bos}Be brief.${SPECIAL.user}Hi${SPECIAL.assistant}Hello.${SPECIAL.eos}${SPECIAL.user}Bye${SPECIAL.assistant}`);
  });
});
