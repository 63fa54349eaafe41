import { parentPort, workerData } from "node:worker_threads";
import { TextCodec } from "../engine/tokenizer.js";
import type { EncodeReply, EncodeRequest } from "./off-thread-encoder.js";

/**
 * The pod's tokenizer thread: encodes long texts, and renders and encodes large conversations, with the
 * model's own tokenizer and chat template (see OffThreadEncoder).
 */
const codec = TextCodec.load((workerData as { dir: string }).dir);
const port = parentPort!;
port.on("message", (m: EncodeRequest) => {
  let reply: EncodeReply;
  try {
    const ids = Int32Array.from("chat" in m ? codec.encodeChat(m.chat) : codec.encode(m.text, m.addBos === undefined ? {} : { addBos: m.addBos }));
    reply = { id: m.id, ids };
    port.postMessage(reply, [ids.buffer]);
  } catch (e) {
    reply = { id: m.id, error: e instanceof Error ? e.message : String(e) };
    port.postMessage(reply);
  }
});
