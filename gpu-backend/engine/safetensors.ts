import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/**
 * safetensors: `u64 LE header length` + JSON header `{name: {dtype, shape, data_offsets}}` + data. Every claim
 * of the header is checked against the file before a byte of data is trusted, so a truncated or lying file is
 * a clear error, never an out-of-bounds read or silent garbage.
 */
export type Dtype = "F32" | "F16" | "BF16" | "F8_E4M3" | "F64" | "I64" | "I32" | "U8" | "I8" | "BOOL";
const DTYPE_BYTES: Record<Dtype, number> = { F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F64: 8, I64: 8, I32: 4, U8: 1, I8: 1, BOOL: 1 };

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

const MAX_HEADER = 100 * 1024 * 1024;

export function parseHeader(path: string, headerBytes: Uint8Array, fileSize: number): Map<string, TensorInfo> {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${path}: ${msg}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("header is not a JSON object");
  const dataStart = 8 + headerBytes.length;
  const dataLen = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") continue;
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null) fail(`tensor '${name}': entry is not an object`);
    if (typeof e.dtype !== "string" || !(e.dtype in DTYPE_BYTES)) fail(`tensor '${name}': unsupported dtype ${JSON.stringify(e.dtype)}`);
    const dtype = e.dtype as Dtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor '${name}': bad shape`);
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      fail(`tensor '${name}': bad data_offsets`);
    }
    const [b, en] = off as [number, number];
    const numel = shape.reduce((a, d) => a * d, 1);
    if (en - b !== numel * DTYPE_BYTES[dtype]) {
      fail(`tensor '${name}': data_offsets span ${en - b} bytes but ${dtype}[${shape}] needs ${numel * DTYPE_BYTES[dtype]}`);
    }
    if (en > dataLen) fail(`tensor '${name}': data ends at byte ${en} but the file holds only ${dataLen} data bytes (truncated?)`);
    tensors.set(name, { name, dtype, shape, begin: dataStart + b, end: dataStart + en });
  }
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.begin < sorted[i - 1]!.end) fail(`tensors '${sorted[i - 1]!.name}' and '${sorted[i]!.name}' overlap`);
  }
  return tensors;
}

/** An open safetensors file: header parsed and validated; tensors read on demand. */
export class SafetensorsFile {
  readonly tensors: Map<string, TensorInfo>;
  private readonly fd: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, "r");
    try {
      const size = fstatSync(this.fd).size;
      if (size < 8) throw new SafetensorsError(`${path}: file is ${size} bytes, too short for a safetensors header`);
      const lenBuf = Buffer.alloc(8);
      readSync(this.fd, lenBuf, 0, 8, 0);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(Math.min(MAX_HEADER, size - 8))) {
        throw new SafetensorsError(`${path}: header length ${n} exceeds the file (${size} bytes) or the ${MAX_HEADER}-byte limit`);
      }
      const header = Buffer.alloc(Number(n));
      readSync(this.fd, header, 0, header.length, 8);
      this.tensors = parseHeader(path, header, size);
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  /** Raw bytes of one tensor (a fresh, aligned buffer). */
  readBytes(name: string): { info: TensorInfo; bytes: Uint8Array } {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(`${this.path}: no tensor '${name}'`);
    const len = info.end - info.begin;
    const buf = new ArrayBuffer(Math.ceil(len / 8) * 8);
    const bytes = new Uint8Array(buf, 0, len);
    let done = 0;
    while (done < len) {
      const got = readSync(this.fd, bytes, done, Math.min(len - done, 1 << 30), info.begin + done);
      if (got === 0) throw new SafetensorsError(`${this.path}: unexpected end of file in tensor '${name}'`);
      done += got;
    }
    return { info, bytes };
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Widens F32 / BF16 / F16 data to float32. */
export function toFloat32(dtype: Dtype, bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  switch (dtype) {
    case "F32":
      return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    case "BF16": {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = src[i]! << 16;
      return new Float32Array(out.buffer);
    }
    case "F16": {
      const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(src[i]!);
      return out;
    }
    default:
      throw new SafetensorsError(`cannot widen ${dtype} to float32`);
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

export interface TensorToWrite {
  name: string;
  dtype: "F32" | "BF16" | "F8_E4M3";
  shape: number[];
  data: Uint8Array;
}

/** The header block (length prefix + JSON, padded so data starts 8-byte aligned) for tensors written in order. */
export function safetensorsHeader(tensors: Omit<TensorToWrite, "data">[], sizes: number[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let off = 0;
  tensors.forEach((t, i) => {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + sizes[i]!] };
    off += sizes[i]!;
  });
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(json.length + ((8 - (json.length % 8)) % 8)).fill(0x20);
  padded.set(json);
  const out = new Uint8Array(8 + padded.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded.length), true);
  out.set(padded, 8);
  return out;
}

/** A whole safetensors file in memory (test fixtures, small checkpoints). */
export function encodeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const head = safetensorsHeader(tensors, tensors.map((t) => t.data.byteLength), metadata);
  const total = head.length + tensors.reduce((a, t) => a + t.data.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let p = head.length;
  for (const t of tensors) {
    out.set(t.data, p);
    p += t.data.byteLength;
  }
  return out;
}
