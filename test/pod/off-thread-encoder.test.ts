import { afterAll, describe, expect, inject, it } from "vitest";
import { TextCodec } from "../../gpu-backend/engine/tokenizer.js";
import { OffThreadEncoder } from "../../gpu-backend/text/off-thread-encoder.js";

const dir = inject("tinyModelDir");
const codec = TextCodec.load(dir);
const encoder = new OffThreadEncoder(codec, dir, 64);
afterAll(() => encoder.close());

describe("OffThreadEncoder", () => {
  it("gives the codec's own ids, inline for short texts and from its thread for long ones", async () => {
    const long = "The edge routes each prompt to a pod; こんにちは, naïve café. ".repeat(40);
    for (const text of ["short", long]) {
      for (const addBos of [true, false, undefined]) {
        const opts = addBos === undefined ? {} : { addBos };
        expect(await encoder.encode(text, opts)).toEqual(codec.encode(text, opts));
      }
    }
    // Concurrent long requests each get their own answer.
    const texts = Array.from({ length: 6 }, (_, i) => `${i} `.repeat(50 + i * 7));
    expect(await Promise.all(texts.map((t) => encoder.encode(t)))).toEqual(texts.map((t) => codec.encode(t)));
  });

  it("renders and encodes conversations as the codec does, small ones inline and large ones on its thread", async () => {
    const chats = new OffThreadEncoder(codec, dir); // the pod's own threshold
    const small = [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }];
    const large = Array.from({ length: 200 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `turn ${i}: naïve café` }));
    for (const turns of [small, large]) expect(await chats.encodeChat(turns)).toEqual(codec.encodeChat(turns));
    // Only the large one is on the thread, so only it fails when the thread closes under it.
    const onThread = expect(chats.encodeChat(large)).rejects.toThrow(/closed/);
    const inline = chats.encodeChat(small);
    await chats.close();
    await onThread;
    expect(await inline).toEqual(codec.encodeChat(small));
  });

  it("fails requests in flight when closed, and starts a new thread on the next long text", async () => {
    const inFlight = expect(encoder.encode("x ".repeat(5000))).rejects.toThrow(/closed/);
    await encoder.close();
    await inFlight;
    const text = "y ".repeat(500);
    expect(await encoder.encode(text)).toEqual(codec.encode(text));
  });
});
