import type { Worker } from "node:worker_threads";
import type { ChatTurn, TextCodec } from "../engine/tokenizer.js";
import { spawnSiblingWorker } from "../threads/spawn-worker.js";

/** What the tokenizer thread is asked to do: encode a text, or render and encode a conversation. */
type EncodeJob = { text: string; addBos?: boolean } | { chat: ChatTurn[] };
export type EncodeRequest = EncodeJob & { id: number };
export type EncodeReply = { id: number; ids: Int32Array } | { id: number; error: string };

/** `TextCodec.encode`, answered asynchronously. */
export type Encode = (text: string, opts?: { addBos?: boolean }) => Promise<number[]>;
/** `TextCodec.encodeChat`, answered asynchronously. */
export type EncodeChat = (turns: ChatTurn[]) => Promise<number[]>;

/** Template characters a turn costs beyond its content, for sizing a conversation (DeepSeek's adds ~20). */
const TURN_OVERHEAD = 64;

/**
 * Tokenizes long texts, and renders and tokenizes large conversations, on a worker thread. Byte-level BPE in
 * JavaScript runs at about 1 MB/s and the chat template at ~30 µs per turn, and the pod's scheduler shares the
 * main thread with HTTP: a megabyte prompt held every running stream's next token back by 1.4 s, and 100,000
 * one-letter turns by 3.4 s. Small inputs are handled inline, where they cost less than a round trip. The
 * worker starts with `start()` or on first use, and is replaced if it dies; requests in flight then fail.
 */
export class OffThreadEncoder {
  private worker: Worker | null = null;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (ids: number[]) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly codec: TextCodec,
    /** The checkpoint folder the worker loads the same tokenizer from. */
    private readonly dir: string,
    /** Texts shorter than this (UTF-16 units) are encoded inline: ~4 ms of BPE at most. */
    private readonly inlineBelow = 4096,
  ) {}

  readonly encode: Encode = async (text, opts = {}) => {
    if (text.length < this.inlineBelow) return this.codec.encode(text, opts);
    return this.onThread({ text, ...(opts.addBos === undefined ? {} : { addBos: opts.addBos }) });
  };

  readonly encodeChat: EncodeChat = async (turns) => {
    let size = 0;
    for (const t of turns) size += (typeof t.content === "string" ? t.content.length : 0) + TURN_OVERHEAD;
    if (size < this.inlineBelow) return this.codec.encodeChat(turns);
    return this.onThread({ chat: turns });
  };

  private onThread(req: EncodeJob): Promise<number[]> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread().postMessage({ id, ...req } satisfies EncodeRequest);
    });
  }

  /** Starts the thread now, so the first long prompt does not wait for it to load the tokenizer. */
  start(): void {
    this.thread();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = spawnSiblingWorker(import.meta.url, "encode-worker", { dir: this.dir });
    // An idle tokenizer thread must not keep the process alive.
    w.unref();
    w.on("message", (m: EncodeReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if ("error" in m) p.reject(new Error(m.error));
      else p.resolve(Array.from(m.ids));
    });
    const fail = (e: Error) => {
      if (this.worker !== w) return;
      this.worker = null;
      this.rejectPending(e);
    };
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`the tokenizer thread exited (code ${code})`)));
    this.worker = w;
    return w;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    this.rejectPending(new Error("the tokenizer thread was closed"));
    await w?.terminate();
  }

  private rejectPending(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
