import { concatBytes } from "./bytes.js";

/**
 * Passes the bytes of one JSON object through as they arrive, changing nothing except chosen top-level members:
 * their values can be captured (kept as JSON text) or replaced. This is how the edge meters and relabels an
 * answer too large to hold in memory: `usage` is read and `model` rewritten on the way, in whatever order and
 * chunking the upstream sends them. It works on bytes: every character that structures JSON is ASCII, and no
 * byte of a UTF-8 multi-byte sequence is, so text inside strings can never be mistaken for structure.
 */
export interface JsonMemberOptions {
  /** Top-level members whose values to keep, as JSON text. */
  capture?: readonly string[];
  /** Top-level members whose values to replace: name → the replacement's JSON text. */
  replace?: Readonly<Record<string, string>>;
  /** A captured value longer than this is dropped from the result (default 64 KiB). */
  maxCaptureBytes?: number;
}

export interface JsonMemberResult {
  /** Captured members seen whole and within the bound (the last one where a name repeats, as JSON.parse does). */
  captured: Map<string, string>;
  /** The text was one object, closed, with nothing but whitespace after it. */
  complete: boolean;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
/** Longer keys cannot be among the few this is asked about. */
const MAX_KEY_BYTES = 128;

type Phase = "start" | "key" | "colon" | "value" | "end" | "invalid";

export class JsonMemberStream {
  private readonly capture: ReadonlySet<string>;
  private readonly replace: ReadonlyMap<string, Uint8Array>;
  private readonly maxCapture: number;
  private readonly captured = new Map<string, string>();
  private readonly decoder = new TextDecoder();

  private phase: Phase = "start";
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** The top-level key being read (null once it is too long to matter). */
  private key: number[] | null = null;
  private member: string | null = null;
  /** The current value's captured bytes so far (null when not capturing it). */
  private parts: Uint8Array[] | null = null;
  private partBytes = 0;
  private dropping = false;

  constructor(opts: JsonMemberOptions) {
    this.capture = new Set(opts.capture ?? []);
    const enc = new TextEncoder();
    this.replace = new Map(Object.entries(opts.replace ?? {}).map(([k, v]) => [k, enc.encode(v)]));
    this.maxCapture = opts.maxCaptureBytes ?? 64 * 1024;
  }

  /** The bytes to pass on for this chunk (its own bytes, less any replaced value, plus replacements). */
  feed(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let emitFrom = 0; // start of this chunk's bytes not yet passed on (meaningless while dropping)
    let valueFrom = 0; // start of this chunk's bytes of the current value
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) {
          this.inString = false;
          if (this.depth === 1 && this.phase === "key") {
            this.member = this.key ? String.fromCharCode(...this.key) : null;
            this.phase = "colon";
            continue;
          }
        }
        if (this.depth === 1 && this.phase === "key" && this.key) {
          if (this.key.length < MAX_KEY_BYTES) this.key.push(b);
          else this.key = null;
        }
        continue;
      }
      if (this.phase === "end") {
        if (!isSpace(b)) this.phase = "invalid";
        continue;
      }
      if (this.phase === "invalid") continue;
      if (this.depth === 0 && this.phase === "start" && b !== 0x7b) {
        if (!isSpace(b)) this.phase = "invalid"; // anything but an object: a scalar, an array, a stray bracket
        continue;
      }
      if (b === QUOTE) {
        this.inString = true;
        if (this.depth === 1 && this.phase === "key") this.key = [];
      } else if (b === 0x7b || b === 0x5b) {
        if (this.depth === 0) this.phase = "key"; // the object opens (only `{` gets here at depth 0)
        this.depth++;
      } else if (b === 0x7d || b === 0x5d) {
        if (--this.depth === 0) {
          if (this.phase === "value") emitFrom = this.endValue(chunk, valueFrom, i, emitFrom);
          this.phase = "end";
        }
      } else if (this.depth === 1 && b === COLON && this.phase === "colon") {
        this.phase = "value";
        valueFrom = i + 1;
        const name = this.member;
        this.parts = name !== null && this.capture.has(name) ? [] : null;
        this.partBytes = 0;
        const replacement = name !== null ? this.replace.get(name) : undefined;
        if (replacement) {
          out.push(chunk.subarray(emitFrom, i + 1), replacement);
          this.dropping = true;
        }
      } else if (this.depth === 1 && b === COMMA && this.phase === "value") {
        emitFrom = this.endValue(chunk, valueFrom, i, emitFrom);
        this.phase = "key";
      }
    }
    if (this.phase === "value" && this.parts) this.keep(chunk.subarray(valueFrom));
    if (!this.dropping) out.push(chunk.subarray(emitFrom));
    return out.filter((p) => p.length > 0);
  }

  /** The text so far cannot be (the start of) one JSON object. */
  get invalid(): boolean {
    return this.phase === "invalid";
  }

  /** What the text held, once the last chunk has been fed. */
  end(): JsonMemberResult {
    return { captured: this.captured, complete: this.phase === "end" && !this.inString };
  }

  private keep(bytes: Uint8Array): void {
    if (!this.parts) return;
    this.partBytes += bytes.length;
    if (this.partBytes > this.maxCapture) this.parts = null;
    else this.parts.push(bytes.slice());
  }

  /**
   * The current value ends at `to` (its terminator, `,` or the closing `}`). Returns where passing this chunk on
   * resumes: at the terminator after a replaced value, else where it was.
   */
  private endValue(chunk: Uint8Array, from: number, to: number, emitFrom: number): number {
    this.keep(chunk.subarray(from, to));
    if (this.parts && this.member !== null) {
      this.captured.set(this.member, this.decoder.decode(concatBytes(this.parts)).trim());
    }
    this.parts = null;
    if (!this.dropping) return emitFrom;
    this.dropping = false;
    return to;
  }
}
