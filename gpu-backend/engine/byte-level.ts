/** GPT-2's reversible map from bytes to printable unicode characters. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out: string[] = new Array(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
}

let inverse: Map<string, number> | null = null;

/** The raw bytes a byte-level BPE token stands for (its symbols mapped back through the table above). */
export function byteLevelBytes(token: string): number[] | null {
  inverse ??= new Map(bytesToUnicode().map((ch, b) => [ch, b]));
  const out: number[] = [];
  for (const ch of token) {
    const b = inverse.get(ch);
    if (b === undefined) return null; // not a byte-level symbol (a special token)
    out.push(b);
  }
  return out;
}
