/**
 * A small deterministic byte-level BPE trainer (GPT-2 byte↔unicode mapping, as DeepSeek's tokenizer uses),
 * for the generated demo checkpoint. Not used at inference: encoding goes through @huggingface/tokenizers.
 */
import { bytesToUnicode } from "../engine/byte-level.js";

/** A JS approximation of DeepSeek's pre-tokenizer splits, good enough to decide which merges to learn. */
const SPLIT = /\p{N}{1,3}|[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+| ?\p{L}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

export function trainBpe(corpus: string, merges: number): [string, string][] {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  const words = new Map<string, number>();
  for (const m of corpus.matchAll(SPLIT)) {
    const w = [...enc.encode(m[0])].map((b) => b2u[b]).join("\u0000");
    words.set(w, (words.get(w) ?? 0) + 1);
  }
  let seqs = [...words.entries()].map(([w, n]) => ({ parts: w.split("\u0000"), n }));
  const learned: [string, string][] = [];
  for (let k = 0; k < merges; k++) {
    const counts = new Map<string, number>();
    for (const { parts, n } of seqs) {
      for (let i = 0; i + 1 < parts.length; i++) {
        const key = `${parts[i]}\u0000${parts[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + n);
      }
    }
    let best: string | null = null;
    let bestN = 1; // a pair seen once is not worth a vocabulary slot
    for (const [key, n] of counts) {
      if (n > bestN || (n === bestN && best !== null && key < best)) {
        best = key;
        bestN = n;
      }
    }
    if (best === null) break;
    const [a, b] = best.split("\u0000") as [string, string];
    learned.push([a, b]);
    seqs = seqs.map(({ parts, n }) => {
      const next: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(parts[i]!);
      }
      return { parts: next, n };
    });
  }
  return learned;
}
