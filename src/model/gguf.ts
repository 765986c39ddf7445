/**
 * A GGUF (version 3) writer: the file format of llama.cpp models and adapters. Layout: magic `GGUF`, version,
 * tensor count, metadata count, the metadata key/value pairs, one info record per tensor (name, dimensions
 * innermost first, ggml type, offset into the data section), padding to the alignment, then each tensor's
 * bytes padded to the alignment. Everything little-endian.
 *
 * No Deno APIs: files go to a {@linkcode ByteSink}.
 *
 * @module
 */
import type { ByteSink } from "../io/source.ts";

/** Alignment of the data section and of every tensor (GGUF's default `general.alignment`). */
const GGUF_ALIGNMENT = 32;

/** ggml tensor types the writer emits, with their codes (`enum ggml_type`). */
export const GGML_TYPE = Object.freeze({ F32: 0, F16: 1, BF16: 30 });

/** A ggml tensor type name. */
export type GgmlType = keyof typeof GGML_TYPE;

const ELEMENT_BYTES: Record<GgmlType, number> = { F32: 4, F16: 2, BF16: 2 };

/** A metadata value with its GGUF type. */
export type GgufValue =
  | { type: "string"; value: string }
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string[]"; value: readonly string[] }
  | { type: "i32[]"; value: ArrayLike<number> }
  | { type: "f32[]"; value: ArrayLike<number> };

/** A tensor to write: its row-major shape (outermost first, as in safetensors) and bytes. */
export interface GgufTensor {
  name: string;
  type: GgmlType;
  /** Row-major shape; written reversed, as ggml's `ne` (innermost first). */
  shape: readonly number[];
  /**
   * The bytes, row-major; or a function, called once in file order, that streams them through `write` in
   * chunks (a chunk may be reused once its write resolves): a large tensor never has to be whole in memory.
   */
  data: Uint8Array | ((write: (chunk: Uint8Array) => Promise<void>) => Promise<void>);
}

const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;

/** Grows a byte buffer with little-endian writes. */
class Bytes {
  #buf = new Uint8Array(1024);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #reserve(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.length + n));
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.#reserve(4);
    this.#view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.#reserve(4);
    this.#view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`gguf writer: invalid u64 ${v}`);
    this.#reserve(8);
    this.#view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  u8(v: number): void {
    this.#reserve(1);
    this.#buf[this.length++] = v;
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.#reserve(b.length);
    this.#buf.set(b, this.length);
    this.length += b.length;
  }
  pad(alignment: number): void {
    while (this.length % alignment !== 0) this.u8(0);
  }
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}

function writeValue(out: Bytes, key: string, v: GgufValue): void {
  const where = `gguf writer: metadata ${JSON.stringify(key)}`;
  const checkNumber = (x: number, integer: boolean) => {
    if (!Number.isFinite(x) || (integer && !Number.isInteger(x))) throw new Error(`${where}: invalid ${x}`);
  };
  switch (v.type) {
    case "string":
      out.u32(VALUE_TYPE.string);
      out.string(v.value);
      return;
    case "u32":
      checkNumber(v.value, true);
      out.u32(VALUE_TYPE.u32);
      out.u32(v.value);
      return;
    case "i32":
      checkNumber(v.value, true);
      out.u32(VALUE_TYPE.i32);
      out.i32(v.value);
      return;
    case "f32":
      checkNumber(v.value, false);
      out.u32(VALUE_TYPE.f32);
      out.f32(v.value);
      return;
    case "bool":
      out.u32(VALUE_TYPE.bool);
      out.u8(v.value ? 1 : 0);
      return;
    case "string[]":
      out.u32(VALUE_TYPE.array);
      out.u32(VALUE_TYPE.string);
      out.u64(v.value.length);
      for (const s of v.value) out.string(s);
      return;
    case "i32[]":
    case "f32[]": {
      const f = v.type === "f32[]";
      out.u32(VALUE_TYPE.array);
      out.u32(f ? VALUE_TYPE.f32 : VALUE_TYPE.i32);
      out.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) {
        checkNumber(v.value[i], !f);
        if (f) out.f32(v.value[i]);
        else out.i32(v.value[i]);
      }
      return;
    }
  }
}

/** Bytes of a tensor's data. */
function ggufTensorBytes(type: GgmlType, shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[type];
}

/** The encoded header (everything before the first tensor's bytes) and the file's total size. */
export interface GgufHeader {
  bytes: Uint8Array;
  /** Offset of each tensor's data from the start of the data section, in input order. */
  offsets: number[];
  fileSize: number;
}

/** Encodes the header of a GGUF file holding `tensors` (in the given order) and `metadata`. */
function encodeGgufHeader(
  metadata: Readonly<Record<string, GgufValue>>,
  tensors: readonly Omit<GgufTensor, "data">[],
): GgufHeader {
  const out = new Bytes();
  out.u32(0x46554747); // "GGUF"
  out.u32(3);
  out.u64(tensors.length);
  out.u64(Object.keys(metadata).length);
  for (const [key, value] of Object.entries(metadata)) {
    out.string(key);
    writeValue(out, key, value);
  }
  const seen = new Set<string>();
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    const where = `gguf writer: tensor ${JSON.stringify(t.name)}`;
    if (seen.has(t.name)) throw new Error(`${where}: duplicate name`);
    seen.add(t.name);
    if (!(t.type in GGML_TYPE)) throw new Error(`${where}: unsupported type ${t.type}`);
    if (t.shape.length < 1 || t.shape.length > 4 || !t.shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
      throw new Error(`${where}: invalid shape ${JSON.stringify(t.shape)}`);
    }
    out.string(t.name);
    out.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) out.u64(t.shape[i]);
    out.u32(GGML_TYPE[t.type]);
    out.u64(offset);
    offsets.push(offset);
    offset += Math.ceil(ggufTensorBytes(t.type, t.shape) / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  }
  out.pad(GGUF_ALIGNMENT);
  const bytes = out.bytes();
  return { bytes, offsets, fileSize: bytes.length + offset };
}

/** Streams a GGUF file into `sink`; returns its size in bytes. */
export async function writeGguf(
  sink: ByteSink,
  metadata: Readonly<Record<string, GgufValue>>,
  tensors: readonly GgufTensor[],
): Promise<number> {
  const header = encodeGgufHeader(metadata, tensors);
  await sink.write(header.bytes);
  const zeros = new Uint8Array(GGUF_ALIGNMENT);
  for (const t of tensors) {
    const want = ggufTensorBytes(t.type, t.shape);
    let length = 0;
    const write = async (chunk: Uint8Array) => {
      length += chunk.length;
      if (length > want) return; // reported below, before anything past the tensor is written
      await sink.write(chunk);
    };
    if (typeof t.data === "function") await t.data(write);
    else await write(t.data);
    if (length !== want) {
      throw new Error(
        `gguf writer: tensor ${JSON.stringify(t.name)} has ${length} bytes, ${t.type} ` +
          `${JSON.stringify(t.shape)} needs ${want}`,
      );
    }
    const pad = (GGUF_ALIGNMENT - (want % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
    if (pad) await sink.write(zeros.subarray(0, pad));
  }
  return header.fileSize;
}
