/**
 * safetensors reader and writer (docs/formats.md), streaming through {@linkcode WeightSource} and
 * {@linkcode ByteSink}: reading opens only the 8-byte length and the JSON header, tensors are read on
 * demand into caller buffers, and writing streams tensor by tensor so multi-GB files never sit in memory.
 * Also sharded checkpoints (`model.safetensors.index.json`).
 *
 * @module
 */
import { type ByteSink, FileNotFoundError, type ModelFiles, type WeightSource } from "../io/source.ts";
import { bf16ToF32, f16ToF32 } from "./dtype.ts";
import { assertFinite } from "./finite.ts";

/**
 * Bits per element of every safetensors dtype, in the reference library's enum order, which is also its
 * alignment order (the writer puts larger dtypes first).
 */
export const DTYPE_BITS = Object.freeze({
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
});

/** A safetensors dtype string (`"BF16"`, `"F32"`, `"U32"`, ...). */
export type Dtype = keyof typeof DTYPE_BITS;

const DTYPE_ORDER = new Map(Object.keys(DTYPE_BITS).map((d, i) => [d, i]));

/** Largest header the reference reader accepts. */
const MAX_HEADER_SIZE = 100_000_000;

/** Where one tensor lives in a file. */
export interface TensorInfo {
  /** Tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  name: string;
  /** Stored element type. */
  dtype: Dtype;
  /** Row-major shape (`[]` for a scalar). */
  shape: number[];
  /** Absolute offset of the first byte in the file. */
  offset: number;
  /** Bytes of data. */
  byteLength: number;
}

/** A parsed safetensors header plus the source to read tensor data from. */
export interface SafetensorsFile {
  /** The file. */
  source: WeightSource;
  /** `__metadata__` (empty when absent). */
  metadata: Record<string, string>;
  /** Tensors by name, in file order. */
  tensors: Map<string, TensorInfo>;
  /** Absolute offset of the data buffer: 8 + header length. */
  dataOffset: number;
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Exact byte size of `shape` in `dtype`, or an error message when it is not a whole number of bytes. */
function byteSize(dtype: Dtype, shape: readonly number[]): number | string {
  const bits = numel(shape) * DTYPE_BITS[dtype];
  if (!Number.isSafeInteger(bits)) return `shape ${JSON.stringify(shape)} is too large`;
  if (bits % 8 !== 0) return `shape ${JSON.stringify(shape)} of ${dtype} is not a whole number of bytes`;
  return bits / 8;
}

function isDtype(s: unknown): s is Dtype {
  return typeof s === "string" && DTYPE_ORDER.has(s);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const isIndex = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/**
 * Reads and validates a safetensors header: 8 bytes of length, then the JSON header; never the tensor
 * data. Every rule of the reference reader is checked (docs/formats.md), plus duplicate names, and
 * a violation throws an Error naming the file and the tensor.
 *
 * @example
 * ```ts
 * const st = await readSafetensorsHeader(fileSource("model.safetensors"));
 * const norm = await readTensorF32(st, "model.norm.weight");
 * ```
 */
export async function readSafetensorsHeader(source: WeightSource): Promise<SafetensorsFile> {
  const file = source.name;
  const fail = (why: string): never => {
    throw new Error(`safetensors ${file}: ${why}`);
  };
  const fileSize = await source.size();
  if (fileSize < 8) fail(`file too small (${fileSize} bytes; the 8-byte header length is missing)`);
  const prefix = new Uint8Array(8);
  await source.read(0, prefix);
  const view = new DataView(prefix.buffer);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (hi > 0 || n > MAX_HEADER_SIZE) fail(`header length ${n} exceeds the maximum ${MAX_HEADER_SIZE}`);
  if (8 + n > fileSize) {
    fail(`header length ${n} runs past the end of the file (${fileSize} bytes): truncated?`);
  }

  const headerBytes = new Uint8Array(n);
  await source.read(8, headerBytes);
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    fail("header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(header)) return fail("header is not a JSON object");
  const duplicate = findDuplicateKey(text);
  if (duplicate) fail(`duplicate key ${JSON.stringify(duplicate)} in the header`);

  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (value === null) continue;
      if (!isObject(value)) fail("__metadata__ must be an object mapping strings to strings");
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") {
          fail(`__metadata__[${JSON.stringify(k)}] must be a string, got ${JSON.stringify(v)}`);
        }
        metadata[k] = v as string;
      }
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (!isObject(value)) {
      fail(`${where}: expected {dtype, shape, data_offsets}, got ${JSON.stringify(value)}`);
    }
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (dtype === undefined) fail(`${where}: missing dtype`);
    if (!isDtype(dtype)) fail(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isIndex)) {
      fail(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      fail(`${where}: data_offsets must be [begin, end], got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as number[];
    if (end < begin) fail(`${where}: data_offsets end ${end} is before begin ${begin}`);
    entries.push({ name, dtype: dtype as Dtype, shape: shape as number[], begin, end });
  }

  // Sorted by offsets, the tensors must tile the data buffer exactly.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const tensors = new Map<string, TensorInfo>();
  const dataOffset = 8 + n;
  let expected = 0;
  let previous = "";
  for (const e of entries) {
    const where = `tensor ${JSON.stringify(e.name)}`;
    if (e.begin > expected) {
      fail(
        `${where}: gap in the data buffer: begins at ${e.begin} but the previous tensor ends at ${expected}`,
      );
    }
    if (e.begin < expected) {
      fail(
        `${where}: overlaps tensor ${
          JSON.stringify(previous)
        } (begins at ${e.begin}, which ends at ${expected})`,
      );
    }
    const size = byteSize(e.dtype, e.shape);
    if (typeof size === "string") fail(`${where}: ${size}`);
    if (e.end - e.begin !== size) {
      fail(
        `${where}: data_offsets span ${e.end - e.begin} bytes but shape ${
          JSON.stringify(e.shape)
        } × ${e.dtype} ` +
          `needs ${size} bytes`,
      );
    }
    tensors.set(e.name, {
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      offset: dataOffset + e.begin,
      byteLength: e.end - e.begin,
    });
    expected = e.end;
    previous = e.name;
  }
  const dataEnd = dataOffset + expected;
  if (dataEnd < fileSize) {
    fail(`${fileSize - dataEnd} trailing bytes after the last tensor (data ends at ${dataEnd})`);
  }
  if (dataEnd > fileSize) {
    fail(`file truncated: tensor data ends at byte ${dataEnd} but the file has ${fileSize} bytes`);
  }
  return { source, metadata, tensors, dataOffset };
}

/**
 * First key that occurs twice in one JSON object of `text` (already known to be valid JSON), or
 * `undefined`. `JSON.parse` silently keeps the last duplicate, which would hide a conflicting tensor.
 */
function findDuplicateKey(text: string): string | undefined {
  const stack: (Set<string> | null)[] = []; // a key set per open object, null per open array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      if (expectKey) {
        const key: string = JSON.parse(text.slice(i, j + 1));
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (ch === 0x5b /* [ */) {
      stack.push(null);
    } else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) {
      stack.pop();
    } else if (ch === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
  return undefined;
}

function tensorInfo(file: SafetensorsFile, name: string): TensorInfo {
  const info = file.tensors.get(name);
  if (!info) throw new Error(`safetensors ${file.source.name}: no tensor ${JSON.stringify(name)}`);
  return info;
}

/**
 * Reads a tensor's raw bytes into `into` (which must have exactly its byte length), or into a new array.
 */
export async function readTensorBytes(
  file: SafetensorsFile,
  name: string,
  into?: Uint8Array,
): Promise<Uint8Array> {
  const info = tensorInfo(file, name);
  const out = into ?? new Uint8Array(info.byteLength);
  if (out.length !== info.byteLength) {
    throw new RangeError(
      `safetensors ${file.source.name}: tensor ${JSON.stringify(name)} has ${info.byteLength} bytes, ` +
        `buffer has ${out.length}`,
    );
  }
  await file.source.read(info.offset, out);
  return out;
}

/**
 * Reads an F32, F16 or BF16 tensor as float32 values, into `into` (exactly its element count) or a new
 * array. Meant for small tensors (norms, biases, test fixtures); large weights go through
 * {@linkcode readTensorBytes} into their final buffer. A NaN or ±∞ is an error naming the tensor and where.
 */
export async function readTensorF32(
  file: SafetensorsFile,
  name: string,
  into?: Float32Array,
): Promise<Float32Array> {
  const info = tensorInfo(file, name);
  const count = numel(info.shape);
  const where = `safetensors ${file.source.name}: tensor ${JSON.stringify(name)}`;
  if (into !== undefined && into.length !== count) {
    throw new RangeError(`${where} has ${count} elements, buffer has ${into.length}`);
  }
  const out = into ?? new Float32Array(count);
  switch (info.dtype) {
    case "F32":
      await file.source.read(info.offset, new Uint8Array(out.buffer, out.byteOffset, info.byteLength));
      break;
    case "BF16":
    case "F16": {
      const half = new Uint16Array(count); // aligned scratch; half-float tensors read here are small
      await file.source.read(info.offset, new Uint8Array(half.buffer));
      if (info.dtype === "BF16") bf16ToF32(half, out);
      else f16ToF32(half, out);
      break;
    }
    default:
      throw new Error(`${where} has dtype ${info.dtype}; readTensorF32 reads F32, F16 and BF16`);
  }
  assertFinite(out, where, info.shape.length === 2 ? info.shape[1] : 0);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Sharded checkpoints

/** Name of the single-file checkpoint. */
export const SINGLE_FILE = "model.safetensors";
/** Name of the shard index of a sharded checkpoint. */
export const INDEX_FILE = "model.safetensors.index.json";

/** A tensor located in one of a checkpoint's files. */
export interface TensorLocation {
  /** The (shard) file holding it. */
  file: SafetensorsFile;
  /** Its dtype, shape and byte range. */
  info: TensorInfo;
}

/** A model's weights: one `model.safetensors` or shards listed by `model.safetensors.index.json`. */
export interface Checkpoint {
  /** The model directory's name (for messages). */
  name: string;
  /** The opened files by file name. */
  files: Map<string, SafetensorsFile>;
  /** Where tensor `name` is; throws "missing tensor X in <dir>" when absent. */
  get(name: string): TensorLocation;
  /** Whether the checkpoint has tensor `name`. */
  has(name: string): boolean;
  /** All tensor names, sorted. */
  names(): string[];
  /** Closes every file's source. */
  close(): void;
}

/**
 * Opens a checkpoint directory's safetensors headers. Like transformers, prefers `model.safetensors` and
 * falls back to `model.safetensors.index.json`, checking that every shard the index names exists and holds
 * the tensors mapped to it. With an index, the tensors are exactly those of its `weight_map`.
 */
export async function openCheckpoint(files: ModelFiles): Promise<Checkpoint> {
  const dir = files.name;
  const opened = new Map<string, SafetensorsFile>();
  const where = new Map<string, TensorLocation>();
  try {
    const single = await openIfExists(files.source(SINGLE_FILE));
    if (single) {
      opened.set(SINGLE_FILE, single);
      for (const info of single.tensors.values()) where.set(info.name, { file: single, info });
    } else {
      const text = await files.readText(INDEX_FILE);
      if (text === undefined) throw new Error(`no ${SINGLE_FILE} or ${INDEX_FILE} in ${dir}`);
      const weightMap = parseIndex(text, `${dir}/${INDEX_FILE}`);
      for (const shard of new Set(weightMap.values())) {
        const st = await openIfExists(files.source(shard));
        if (!st) {
          throw new Error(`shard ${JSON.stringify(shard)} named in ${INDEX_FILE} is missing in ${dir}`);
        }
        opened.set(shard, st);
      }
      for (const [tensor, shard] of weightMap) {
        const file = opened.get(shard)!;
        const info = file.tensors.get(tensor);
        if (!info) {
          throw new Error(
            `${dir}/${INDEX_FILE} maps tensor ${JSON.stringify(tensor)} to ${JSON.stringify(shard)}, ` +
              `which does not contain it`,
          );
        }
        where.set(tensor, { file, info });
      }
    }
  } catch (err) {
    for (const f of opened.values()) f.source.close?.();
    throw err;
  }
  return {
    name: dir,
    files: opened,
    get(name) {
      const loc = where.get(name);
      if (!loc) throw new Error(`missing tensor ${JSON.stringify(name)} in ${dir}`);
      return loc;
    },
    has: (name) => where.has(name),
    names: () => [...where.keys()].sort(),
    close() {
      for (const f of opened.values()) f.source.close?.();
    },
  };
}

async function openIfExists(source: WeightSource): Promise<SafetensorsFile | undefined> {
  try {
    return await readSafetensorsHeader(source);
  } catch (err) {
    if (err instanceof FileNotFoundError) return undefined;
    throw err;
  }
}

/** Validates an index file and returns its weight map (tensor → shard file name). */
function parseIndex(text: string, file: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: invalid JSON (${(err as Error).message})`);
  }
  if (!isObject(json)) throw new Error(`${file}: expected a JSON object`);
  if (json.metadata !== undefined && json.metadata !== null && !isObject(json.metadata)) {
    throw new Error(`${file}: metadata must be an object`);
  }
  const wm = json.weight_map;
  if (!isObject(wm)) throw new Error(`${file}: weight_map must be an object mapping tensor names to files`);
  const map = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(wm)) {
    if (typeof shard !== "string") {
      throw new Error(
        `${file}: weight_map[${JSON.stringify(tensor)}] must be a file name, got ${JSON.stringify(shard)}`,
      );
    }
    // Shards are plain names in the model directory; refuse paths that could escape it.
    if (shard === "" || shard === "." || shard === ".." || /[\\/]/.test(shard)) {
      throw new Error(
        `${file}: weight_map[${JSON.stringify(tensor)}] = ${JSON.stringify(shard)} is not a plain file name`,
      );
    }
    map.set(tensor, shard);
  }
  return map;
}

// ---------------------------------------------------------------------------------------------------
// Writer

/** A tensor to write: name, dtype and shape (its bytes come separately). */
export interface TensorSpec {
  /** Tensor name (not `__metadata__`). */
  name: string;
  /** Element type. */
  dtype: Dtype;
  /** Row-major shape. */
  shape: number[];
}

/** A tensor placed in the data buffer by {@linkcode encodeSafetensorsHeader}. */
export interface PlacedTensor extends TensorSpec {
  /** `data_offsets[0]`: start relative to the data buffer. */
  begin: number;
  /** `data_offsets[1]`: end (exclusive) relative to the data buffer. */
  end: number;
}

/** An encoded header (see {@linkcode encodeSafetensorsHeader}). */
export interface EncodedHeader {
  /** The 8-byte little-endian length followed by the space-padded JSON header. */
  bytes: Uint8Array;
  /** Tensors in file order with their offsets. */
  tensors: PlacedTensor[];
  /** Total file size: header bytes plus data. */
  fileSize: number;
}

/** Orders strings by Unicode code point, like Rust's `str` ordering (UTF-16 order differs above U+FFFF). */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

/**
 * Encodes a header exactly like the reference writer (docs/formats.md): tensors sorted by dtype
 * alignment descending then name, offsets assigned consecutively, compact JSON with `__metadata__` first,
 * padded with spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned.
 */
export function encodeSafetensorsHeader(
  entries: readonly TensorSpec[],
  metadata?: Record<string, string>,
): EncodedHeader {
  const seen = new Set<string>();
  for (const e of entries) {
    const where = `safetensors writer: tensor ${JSON.stringify(e.name)}`;
    if (e.name === "__metadata__") throw new Error(`${where}: reserved name`);
    if (seen.has(e.name)) throw new Error(`${where}: duplicate name`);
    seen.add(e.name);
    if (!isDtype(e.dtype)) throw new Error(`${where}: unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!e.shape.every(isIndex)) throw new Error(`${where}: invalid shape ${JSON.stringify(e.shape)}`);
  }
  const sorted = [...entries].sort((a, b) =>
    DTYPE_ORDER.get(b.dtype)! - DTYPE_ORDER.get(a.dtype)! || compareCodePoints(a.name, b.name)
  );
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new Error(`safetensors writer: __metadata__[${JSON.stringify(k)}] must be a string`);
      }
    }
    header.__metadata__ = metadata;
  }
  const tensors: PlacedTensor[] = [];
  let offset = 0;
  for (const e of sorted) {
    const size = byteSize(e.dtype, e.shape);
    if (typeof size === "string") {
      throw new Error(`safetensors writer: tensor ${JSON.stringify(e.name)}: ${size}`);
    }
    const placed = { name: e.name, dtype: e.dtype, shape: [...e.shape], begin: offset, end: offset + size };
    tensors.push(placed);
    header[e.name] = { dtype: e.dtype, shape: placed.shape, data_offsets: [placed.begin, placed.end] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + n).fill(0x20, 8 + json.length);
  new DataView(bytes.buffer).setUint32(0, n, true); // n < 2^32: the upper half stays 0
  bytes.set(json, 8);
  return { bytes, tensors, fileSize: 8 + n + offset };
}

/**
 * Tensor bytes: an array view, or a function producing them when the writer gets to this tensor — at once,
 * or in pieces (each written before the next is taken, so a piece may reuse the last one's memory).
 */
export type TensorData =
  | ArrayBufferView
  | (() => ArrayBufferView | Iterable<ArrayBufferView> | Promise<ArrayBufferView>);

/** A tensor to write with its data (little-endian, row-major). */
export interface TensorEntry extends TensorSpec {
  /** The bytes; a function is called once, in file order, so large tensors can be produced one at a time. */
  data: TensorData;
}

function asBytes(v: ArrayBufferView): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function checkDataLength(t: PlacedTensor, length: number): void {
  if (length !== t.end - t.begin) {
    throw new Error(
      `safetensors writer: tensor ${JSON.stringify(t.name)} has ${length} bytes of data but shape ` +
        `${JSON.stringify(t.shape)} × ${t.dtype} needs ${t.end - t.begin}`,
    );
  }
}

/**
 * Streams a safetensors file into `sink`: the header, then each tensor's data in file order (lazy `data`
 * functions are called just before their tensor is written). Returns the number of bytes written.
 */
export async function writeSafetensors(
  sink: ByteSink,
  entries: readonly TensorEntry[],
  metadata?: Record<string, string>,
): Promise<number> {
  const header = encodeSafetensorsHeader(entries, metadata);
  const byName = new Map(entries.map((e) => [e.name, e]));
  await sink.write(header.bytes);
  for (const t of header.tensors) {
    const { data } = byName.get(t.name)!;
    const produced = typeof data === "function" ? await data() : data;
    if (ArrayBuffer.isView(produced)) {
      const bytes = asBytes(produced);
      checkDataLength(t, bytes.length);
      await sink.write(bytes);
      continue;
    }
    let written = 0;
    for (const piece of produced) {
      const bytes = asBytes(piece);
      written += bytes.length;
      if (written > t.end - t.begin) checkDataLength(t, written); // too many: nothing past the tensor
      await sink.write(bytes);
    }
    checkDataLength(t, written);
  }
  return header.fileSize;
}

/** Encodes a whole safetensors file in memory (for small files: adapters, fixtures, tests). */
export function encodeSafetensors(
  entries: readonly (TensorSpec & { data: ArrayBufferView })[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header = encodeSafetensorsHeader(entries, metadata);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const out = new Uint8Array(header.fileSize);
  out.set(header.bytes);
  let pos = header.bytes.length;
  for (const t of header.tensors) {
    const bytes = asBytes(byName.get(t.name)!.data);
    checkDataLength(t, bytes.length);
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}
