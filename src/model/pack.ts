/**
 * Weight packs: a one-time conversion of a checkpoint into the layout the engine streams (DESIGN.md §3).
 * Each decoder layer is one contiguous blob in the chosen format, so loading a layer is one sequential read
 * straight into its arena slot; the embedding (and an untied LM head) are row-major matrices whose rows are
 * read a token (or a vocabulary chunk) at a time.
 *
 * File layout (little-endian):
 * ```
 * "MESPPACK" | u32 version | u32 header bytes | header JSON (padded to 64) | sections, each 64-aligned
 * ```
 * The header records the format, the model config, where every section is, and a fingerprint of the source
 * checkpoint, so a stale or foreign pack is detected instead of misread.
 *
 * @module
 */
import type { ByteSink, ModelFiles, WeightSource } from "../io/source.ts";
import type { WeightDtype } from "../runtime/kernels.ts";
import type { ModelConfig } from "./config.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16 } from "./dtype.ts";
import { quantize } from "./quantize.ts";
import type { Checkpoint, TensorInfo } from "./safetensors.ts";

/** Element format of a pack's matrices (norms and biases are always f32). */
export type PackFormat = "q4" | "q8" | "bf16" | "f16" | "f32";

/** Every pack format, most compact first. */
export const PACK_FORMATS: readonly PackFormat[] = ["q4", "q8", "bf16", "f16", "f32"];

/** The seven linear layers of a Qwen2 decoder layer, in the order they are stored. */
export const LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;
/** Name of a decoder-layer linear. */
export type Linear = typeof LINEARS[number];

/** Quantization group along a row (MLX affine). */
export const GROUP = 64;
const ALIGN = 64;
const MAGIC = "MESPPACK";
const VERSION = 2;

/** A row-major matrix [rows, cols] placed in a blob; quantized ones carry scales/biases [rows, cols/64]. */
export interface MatrixSlot {
  rows: number;
  cols: number;
  dtype: WeightDtype;
  /** Scales and biases are bf16 (kept from an MLX checkpoint) rather than f16. */
  bf16Scales: boolean;
  /** Byte offsets within the blob. */
  offset: number;
  scalesOffset: number;
  biasesOffset: number;
  /** Bytes of one row of data, of scales (and of biases). */
  rowBytes: number;
  scaleRowBytes: number;
  /** Total bytes (data + scales + biases). */
  bytes: number;
}

/** An f32 vector placed in a blob. */
export interface VectorSlot {
  length: number;
  offset: number;
  bytes: number;
}

/** The attention linears, stored together at the start of a layer's blob. */
export const ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"] as const;
/** Name of an attention linear. */
export type AttentionLinear = typeof ATTENTION[number];

/**
 * One chunk of the MLP's intermediate dimension, [c0, c1): the gate and up rows [c0, c1) ([n, hidden] each)
 * and the down projection's columns [c0, c1) stored as their own [hidden, n] matrix, contiguous, so the
 * MLP streams one chunk at a time.
 */
export interface MlpChunkLayout {
  c0: number;
  c1: number;
  /** Offset of the chunk within the layer's blob; the slots' offsets are relative to the chunk. */
  offset: number;
  gate: MatrixSlot;
  up: MatrixSlot;
  down: MatrixSlot;
  bytes: number;
}

/**
 * Where each tensor of a decoder layer sits in the layer's blob (the same for every layer): first the
 * attention block (q, k, v, o, the biases and both norm weights), then the MLP in chunks of `mlpChunk`
 * columns of the intermediate dimension.
 */
export interface LayerLayout {
  attention: Record<AttentionLinear, MatrixSlot>;
  qBias: VectorSlot;
  kBias: VectorSlot;
  vBias: VectorSlot;
  inputNorm: VectorSlot;
  postNorm: VectorSlot;
  /** Bytes of the attention block (offset 0). */
  attentionBytes: number;
  mlpChunk: number;
  chunks: MlpChunkLayout[];
  /** Bytes of the largest chunk. */
  chunkBytes: number;
  bytes: number;
}

/** Default MLP chunk (columns of the intermediate dimension). */
export const MLP_CHUNK = 256;

/** Shape [out, in] of each linear. */
export function linearShape(cfg: ModelConfig, name: Linear): [number, number] {
  const d = cfg.hiddenSize, q = cfg.numHeads * cfg.headDim, kv = cfg.numKvHeads * cfg.headDim;
  const i = cfg.intermediateSize;
  switch (name) {
    case "q_proj":
      return [q, d];
    case "k_proj":
    case "v_proj":
      return [kv, d];
    case "o_proj":
      return [d, q];
    case "gate_proj":
    case "up_proj":
      return [i, d];
    case "down_proj":
      return [d, i];
  }
}

function dtypeOf(format: PackFormat): WeightDtype {
  return format;
}

const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** Places a [rows, cols] matrix of `format` at byte `at`. */
export function matrixSlot(
  rows: number,
  cols: number,
  format: PackFormat,
  bf16Scales: boolean,
  at: number,
): MatrixSlot {
  const quantized = format === "q4" || format === "q8";
  if (quantized && cols % GROUP !== 0) {
    throw new Error(
      `${format} weights need every input dimension to be a multiple of ${GROUP}, but a matrix has ${cols} ` +
        `columns; use --weights f16 or f32 for this model`,
    );
  }
  const elem = { q4: 0.5, q8: 1, bf16: 2, f16: 2, f32: 4 }[format];
  const rowBytes = cols * elem;
  const scaleRowBytes = quantized ? (cols / GROUP) * 2 : 0;
  const offset = align(at);
  const scalesOffset = align(offset + rows * rowBytes);
  const biasesOffset = align(scalesOffset + rows * scaleRowBytes);
  const end = quantized ? biasesOffset + rows * scaleRowBytes : offset + rows * rowBytes;
  return {
    rows,
    cols,
    dtype: dtypeOf(format),
    bf16Scales: quantized && bf16Scales,
    offset,
    scalesOffset: quantized ? scalesOffset : 0,
    biasesOffset: quantized ? biasesOffset : 0,
    rowBytes,
    scaleRowBytes,
    bytes: end - offset,
  };
}

function vectorSlot(length: number, at: number): VectorSlot {
  return { length, offset: align(at), bytes: length * 4 };
}

/** The layout of one decoder layer's blob, with the MLP in chunks of `mlpChunk` columns (a multiple of 64). */
export function layerLayout(
  cfg: ModelConfig,
  format: PackFormat,
  bf16Scales = false,
  mlpChunk = MLP_CHUNK,
): LayerLayout {
  if (!(mlpChunk > 0) || mlpChunk % GROUP !== 0) {
    throw new Error(`MLP chunk must be a multiple of ${GROUP}, got ${mlpChunk}`);
  }
  let at = 0;
  const attention = {} as Record<AttentionLinear, MatrixSlot>;
  for (const name of ATTENTION) {
    const [o, i] = linearShape(cfg, name);
    const slot = matrixSlot(o, i, format, bf16Scales, at);
    attention[name] = slot;
    at = slot.offset + slot.bytes;
  }
  const vec = (n: number) => {
    const v = vectorSlot(n, at);
    at = v.offset + v.bytes;
    return v;
  };
  const q = cfg.numHeads * cfg.headDim, kv = cfg.numKvHeads * cfg.headDim, d = cfg.hiddenSize;
  const qBias = vec(q), kBias = vec(kv), vBias = vec(kv);
  const inputNorm = vec(d), postNorm = vec(d);
  const attentionBytes = align(at);
  const chunks: MlpChunkLayout[] = [];
  let offset = attentionBytes;
  for (let c0 = 0; c0 < cfg.intermediateSize; c0 += mlpChunk) {
    const c1 = Math.min(cfg.intermediateSize, c0 + mlpChunk), n = c1 - c0;
    const gate = matrixSlot(n, d, format, bf16Scales, 0);
    const up = matrixSlot(n, d, format, bf16Scales, gate.offset + gate.bytes);
    const down = matrixSlot(d, n, format, bf16Scales, up.offset + up.bytes);
    const bytes = align(down.offset + down.bytes);
    chunks.push({ c0, c1, offset, gate, up, down, bytes });
    offset += bytes;
  }
  const chunkBytes = Math.max(...chunks.map((c) => c.bytes));
  return {
    attention,
    qBias,
    kBias,
    vBias,
    inputNorm,
    postNorm,
    attentionBytes,
    mlpChunk,
    chunks,
    chunkBytes,
    bytes: offset,
  };
}

/** A section of the pack file. */
export interface Section {
  offset: number;
  bytes: number;
}

/** The JSON header of a pack. */
export interface PackHeader {
  version: number;
  format: PackFormat;
  bf16Scales: boolean;
  /** Columns of the MLP's intermediate dimension per stored chunk. */
  mlpChunk: number;
  config: ModelConfig;
  /** Fingerprint of the source checkpoint (see {@linkcode checkpointFingerprint}). */
  fingerprint: string;
  /** Where the pack came from, for messages. */
  source: string;
  embed: Section;
  layers: Section[];
  norm: Section;
  lmHead?: Section;
  /** Total file size. */
  fileBytes: number;
}

/** Options for {@linkcode writePack}. */
export interface WritePackOptions {
  format: PackFormat;
  /** The source's fingerprint, recorded in the header. */
  fingerprint: string;
  /** Called after each section with (done, total) sections. */
  onProgress?: (done: number, total: number, what: string) => void;
  /** MLP chunk (columns of the intermediate dimension) the layers are stored in (default 256). */
  mlpChunk?: number;
}

/** Tensor names of the checkpoint for layer `l`. */
function hfName(l: number, suffix: string): string {
  return `model.layers.${l}.${suffix}`;
}
/** Module path of each linear inside a decoder layer (`model.layers.{i}.<path>`). */
export const LINEAR_PREFIX: Record<Linear, string> = {
  q_proj: "self_attn.q_proj",
  k_proj: "self_attn.k_proj",
  v_proj: "self_attn.v_proj",
  o_proj: "self_attn.o_proj",
  gate_proj: "mlp.gate_proj",
  up_proj: "mlp.up_proj",
  down_proj: "mlp.down_proj",
};

/**
 * Whether the source's quantized weights can be copied as they are (an MLX checkpoint packed into its own
 * bit width keeps its bits and bf16 scales: no re-quantization).
 */
function copiesQuantized(cfg: ModelConfig, format: PackFormat): boolean {
  const q = cfg.quantization;
  return q !== undefined && q.groupSize === GROUP &&
    ((q.bits === 4 && format === "q4") || (q.bits === 8 && format === "q8"));
}

/** Plans the whole pack: header (without fingerprint/source) and sections. */
export function planPack(
  cfg: ModelConfig,
  format: PackFormat,
  mlpChunk = MLP_CHUNK,
): Omit<PackHeader, "fingerprint" | "source"> {
  const bf16Scales = copiesQuantized(cfg, format);
  const layout = layerLayout(cfg, format, bf16Scales, mlpChunk);
  // sections start after a generous header allowance, fixed so offsets never depend on the header text
  let at = 16 + align(4096 + cfg.numLayers * 64);
  const section = (bytes: number): Section => {
    const s = { offset: align(at), bytes };
    at = s.offset + bytes;
    return s;
  };
  const embed = section(matrixSlot(cfg.vocabSize, cfg.hiddenSize, format, bf16Scales, 0).bytes);
  const layers = Array.from({ length: cfg.numLayers }, () => section(layout.bytes));
  const norm = section(cfg.hiddenSize * 4);
  const lmHead = cfg.tieWordEmbeddings
    ? undefined
    : section(matrixSlot(cfg.vocabSize, cfg.hiddenSize, format, bf16Scales, 0).bytes);
  return {
    version: VERSION,
    format,
    bf16Scales,
    mlpChunk,
    config: cfg,
    embed,
    layers,
    norm,
    lmHead,
    fileBytes: align(at),
  };
}

/** Reads rows [r0, r1) of a checkpoint matrix as f32, whatever its stored dtype (incl. MLX quantized). */
export async function readRowsF32(
  ckpt: Checkpoint,
  base: string,
  r0: number,
  r1: number,
  into: Float32Array,
): Promise<void> {
  const q = ckpt.has(`${base}.scales`) ? ckpt.get(`${base}.weight`) : undefined;
  if (q) {
    const { rows, cols, bits } = mlxShape(ckpt, base);
    const { data, scales, biases } = await readMlxRows(ckpt, base, r0, r1, rows, cols, bits);
    const groups = cols / GROUP;
    for (let r = 0; r < r1 - r0; r++) {
      for (let c = 0; c < cols; c++) {
        const g = r * groups + Math.floor(c / GROUP);
        const qv = bits === 4 ? (data[(r * cols + c) >> 1] >> ((c & 1) * 4)) & 15 : data[r * cols + c];
        into[r * cols + c] = Math.fround(
          Math.fround(bf16BitsToF32(scales[g]) * qv) + bf16BitsToF32(biases[g]),
        );
      }
    }
    return;
  }
  const { file, info } = ckpt.get(`${base}.weight`);
  await readDenseRows(file.source, info, r0, r1, into);
}

/** Reads a whole (small) tensor as f32: norms and biases. */
async function readVectorF32(ckpt: Checkpoint, name: string, length: number): Promise<Float32Array> {
  const { file, info } = ckpt.get(name);
  if (info.shape.length !== 1 || info.shape[0] !== length) {
    throw new Error(`tensor ${name} in ${ckpt.name} has shape [${info.shape}], expected [${length}]`);
  }
  const out = new Float32Array(length);
  await readDenseRows(file.source, { ...info, shape: [1, length] }, 0, 1, out);
  return out;
}

async function readDenseRows(
  source: WeightSource,
  info: TensorInfo,
  r0: number,
  r1: number,
  into: Float32Array,
) {
  const cols = info.shape.length === 1 ? info.shape[0] : info.shape[1];
  const size = info.dtype === "F32" ? 4 : info.dtype === "F16" || info.dtype === "BF16" ? 2 : 0;
  if (!size) throw new Error(`tensor ${info.name} has dtype ${info.dtype}; expected F32, F16 or BF16`);
  const raw = new Uint8Array((r1 - r0) * cols * size);
  await source.read(info.offset + r0 * cols * size, raw);
  const n = (r1 - r0) * cols;
  if (size === 4) into.set(new Float32Array(raw.buffer, 0, n));
  else {
    const h = new Uint16Array(raw.buffer, 0, n);
    const conv = info.dtype === "F16" ? f16BitsToF32 : bf16BitsToF32;
    for (let i = 0; i < n; i++) into[i] = conv(h[i]);
  }
}

function mlxShape(ckpt: Checkpoint, base: string): { rows: number; cols: number; bits: number } {
  const w = ckpt.get(`${base}.weight`).info, s = ckpt.get(`${base}.scales`).info;
  const b = ckpt.get(`${base}.biases`).info;
  if (w.dtype !== "U32" || w.shape.length !== 2 || s.shape.length !== 2) {
    throw new Error(`${base} in ${ckpt.name}: expected MLX quantized U32 weight with 2-D scales`);
  }
  const [rows, words] = w.shape;
  const cols = s.shape[1] * GROUP;
  const bits = (words * 32) / cols;
  if (s.shape[0] !== rows || b.shape.join() !== s.shape.join() || (bits !== 4 && bits !== 8)) {
    throw new Error(
      `${base} in ${ckpt.name}: inconsistent MLX shapes weight [${w.shape}] scales [${s.shape}]`,
    );
  }
  if (s.dtype !== "BF16" && s.dtype !== "F16") {
    throw new Error(`${base}.scales in ${ckpt.name}: dtype ${s.dtype}`);
  }
  return { rows, cols, bits };
}

async function readMlxRows(
  ckpt: Checkpoint,
  base: string,
  r0: number,
  r1: number,
  _rows: number,
  cols: number,
  bits: number,
) {
  const w = ckpt.get(`${base}.weight`), s = ckpt.get(`${base}.scales`), b = ckpt.get(`${base}.biases`);
  const rowBytes = (cols * bits) / 8, groups = cols / GROUP;
  const data = new Uint8Array((r1 - r0) * rowBytes);
  await w.file.source.read(w.info.offset + r0 * rowBytes, data);
  const scales = new Uint16Array((r1 - r0) * groups), biases = new Uint16Array((r1 - r0) * groups);
  if (s.info.dtype === "F16" || b.info.dtype === "F16") {
    throw new Error(`${base} in ${ckpt.name}: f16 MLX scales are not supported yet (bf16 expected)`);
  }
  await s.file.source.read(s.info.offset + r0 * groups * 2, new Uint8Array(scales.buffer));
  await b.file.source.read(b.info.offset + r0 * groups * 2, new Uint8Array(biases.buffer));
  return { data, scales, biases };
}

/** Rows per conversion chunk: about 4 MB of f32. */
function chunkRows(cols: number): number {
  return Math.max(1, Math.floor((4 << 20) / (cols * 4)));
}

/** Sequential output with padding up to absolute offsets. */
interface Out {
  padTo(offset: number): Promise<void>;
  emit(bytes: Uint8Array): Promise<void>;
}

/** Converted rows [r0, r1) of a matrix: row data and (quantized) raw half scales and biases. */
interface ConvertedRows {
  r0: number;
  data: Uint8Array;
  scales?: Uint8Array;
  biases?: Uint8Array;
}

/**
 * Converts the matrix `base` of the checkpoint into `format`, yielding ~4 MB of source rows at a time. MLX
 * weights in the pack's own bit width are copied as they are (bits, scales and biases).
 */
async function* convertRows(
  ckpt: Checkpoint,
  cfg: ModelConfig,
  base: string,
  rows: number,
  cols: number,
  format: PackFormat,
): AsyncGenerator<ConvertedRows> {
  const quantizedSource = ckpt.has(`${base}.scales`);
  if (quantizedSource) {
    const s = mlxShape(ckpt, base);
    if (s.rows !== rows || s.cols !== cols) {
      throw new Error(`${base} in ${ckpt.name} is [${s.rows}, ${s.cols}], expected [${rows}, ${cols}]`);
    }
  } else {
    const info = ckpt.get(`${base}.weight`).info;
    if (info.shape.length !== 2 || info.shape[0] !== rows || info.shape[1] !== cols) {
      throw new Error(
        `${base}.weight in ${ckpt.name} has shape [${info.shape}], expected [${rows}, ${cols}]`,
      );
    }
  }
  const step = chunkRows(cols);
  const f32 = new Float32Array(Math.min(step, rows) * cols);
  const bytes = (u: Uint16Array) => new Uint8Array(u.buffer, u.byteOffset, u.byteLength);
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step), n = r1 - r0;
    if (quantizedSource && copiesQuantized(cfg, format)) {
      const q = await readMlxRows(ckpt, base, r0, r1, rows, cols, cfg.quantization!.bits);
      yield { r0, data: q.data, scales: bytes(q.scales), biases: bytes(q.biases) };
      continue;
    }
    const rowsF32 = f32.subarray(0, n * cols);
    await readRowsF32(ckpt, base, r0, r1, rowsF32);
    if (format === "q4" || format === "q8") {
      const bits = format === "q4" ? 4 : 8;
      const q = quantize(rowsF32, cols, { bits, scaleDtype: "f16", name: base, rowOffset: r0 });
      yield { r0, data: q.q, scales: bytes(q.scales), biases: bytes(q.biases) };
    } else {
      yield { r0, data: encodeDense(rowsF32, format) };
    }
  }
}

/**
 * Streams the matrix `base` into `slot` at absolute offset `at` (the row data as it is converted; scales
 * and biases, 1/16 of the q4 data, are held until the data is written).
 */
async function convertMatrix(
  ckpt: Checkpoint,
  cfg: ModelConfig,
  base: string,
  slot: MatrixSlot,
  format: PackFormat,
  at: number,
  out: Out,
): Promise<void> {
  const scales = new Uint8Array(slot.rows * slot.scaleRowBytes),
    biases = new Uint8Array(slot.rows * slot.scaleRowBytes);
  await out.padTo(at + slot.offset);
  for await (const c of convertRows(ckpt, cfg, base, slot.rows, slot.cols, format)) {
    await out.emit(c.data);
    if (c.scales) scales.set(c.scales, c.r0 * slot.scaleRowBytes);
    if (c.biases) biases.set(c.biases, c.r0 * slot.scaleRowBytes);
  }
  if (slot.scaleRowBytes) {
    await out.padTo(at + slot.scalesOffset);
    await out.emit(scales);
    await out.padTo(at + slot.biasesOffset);
    await out.emit(biases);
  }
}

/** A whole converted matrix in memory (the MLP's, which the pack stores in column chunks). */
interface ConvertedMatrix {
  data: Uint8Array;
  scales: Uint8Array;
  biases: Uint8Array;
  rowBytes: number;
  scaleRowBytes: number;
}

async function convertWhole(
  ckpt: Checkpoint,
  cfg: ModelConfig,
  base: string,
  rows: number,
  cols: number,
  format: PackFormat,
): Promise<ConvertedMatrix> {
  const shape = matrixSlot(rows, cols, format, false, 0);
  const m: ConvertedMatrix = {
    data: new Uint8Array(rows * shape.rowBytes),
    scales: new Uint8Array(rows * shape.scaleRowBytes),
    biases: new Uint8Array(rows * shape.scaleRowBytes),
    rowBytes: shape.rowBytes,
    scaleRowBytes: shape.scaleRowBytes,
  };
  for await (const c of convertRows(ckpt, cfg, base, rows, cols, format)) {
    m.data.set(c.data, c.r0 * shape.rowBytes);
    if (c.scales) m.scales.set(c.scales, c.r0 * shape.scaleRowBytes);
    if (c.biases) m.biases.set(c.biases, c.r0 * shape.scaleRowBytes);
  }
  return m;
}

/**
 * Writes the block of `m` made of rows [r0, r0 + slot.rows) and columns [c0, c0 + slot.cols) into `slot`
 * at absolute offset `at` (row slices of gate/up, column blocks of down).
 */
async function emitBlock(m: ConvertedMatrix, r0: number, c0: number, slot: MatrixSlot, at: number, out: Out) {
  const colByte = c0 * (slot.rowBytes / slot.cols), colGroupByte = slot.scaleRowBytes ? (c0 / GROUP) * 2 : 0;
  const gather = (src: Uint8Array, srcRow: number, start: number, width: number) => {
    const dst = new Uint8Array(slot.rows * width);
    for (let r = 0; r < slot.rows; r++) {
      dst.set(src.subarray((r0 + r) * srcRow + start, (r0 + r) * srcRow + start + width), r * width);
    }
    return dst;
  };
  await out.padTo(at + slot.offset);
  await out.emit(gather(m.data, m.rowBytes, colByte, slot.rowBytes));
  if (slot.scaleRowBytes) {
    await out.padTo(at + slot.scalesOffset);
    await out.emit(gather(m.scales, m.scaleRowBytes, colGroupByte, slot.scaleRowBytes));
    await out.padTo(at + slot.biasesOffset);
    await out.emit(gather(m.biases, m.scaleRowBytes, colGroupByte, slot.scaleRowBytes));
  }
}

function encodeDense(x: Float32Array, format: "f32" | "f16" | "bf16"): Uint8Array {
  if (format === "f32") return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const out = new Uint16Array(x.length);
  if (format === "f16") new Float16Array(out.buffer).set(x);
  else f32ToBf16(x, out);
  return new Uint8Array(out.buffer);
}

/**
 * Writes a pack for `ckpt` to `sink`, streaming: the embedding and the attention matrices ~4 MB of rows at a
 * time; one layer's three MLP matrices whole (converted), since they are stored in column chunks.
 */
export async function writePack(
  ckpt: Checkpoint,
  cfg: ModelConfig,
  sink: ByteSink,
  options: WritePackOptions,
): Promise<PackHeader> {
  const { format } = options;
  const plan = planPack(cfg, format, options.mlpChunk);
  const header: PackHeader = { ...plan, fingerprint: options.fingerprint, source: ckpt.name };
  const layout = layerLayout(cfg, format, plan.bf16Scales, plan.mlpChunk);
  let written = 0;
  const out: Out = {
    async emit(bytes) {
      await sink.write(bytes);
      written += bytes.length;
    },
    async padTo(offset) {
      if (offset < written) throw new Error(`pack writer: overlap at byte ${offset}`);
      if (offset > written) await out.emit(new Uint8Array(offset - written));
    },
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  if (16 + json.length > plan.embed.offset) throw new Error(`pack header too large (${json.length} bytes)`);
  const pre = new Uint8Array(16);
  pre.set(new TextEncoder().encode(MAGIC));
  new DataView(pre.buffer).setUint32(8, VERSION, true);
  new DataView(pre.buffer).setUint32(12, json.length, true);
  await out.emit(pre);
  await out.emit(json);
  const total = cfg.numLayers + 2 + (plan.lmHead ? 1 : 0);
  let done = 0;
  const progress = (what: string) => options.onProgress?.(++done, total, what);
  const vocab = matrixSlot(cfg.vocabSize, cfg.hiddenSize, format, plan.bf16Scales, 0);
  const vector = async (name: string, slot: VectorSlot, at: number) => {
    await out.padTo(at + slot.offset);
    await out.emit(new Uint8Array((await readVectorF32(ckpt, name, slot.length)).buffer));
  };

  await convertMatrix(ckpt, cfg, "model.embed_tokens", vocab, format, plan.embed.offset, out);
  progress("embedding");
  for (let l = 0; l < cfg.numLayers; l++) {
    const at = plan.layers[l].offset;
    for (const name of ATTENTION) {
      await convertMatrix(ckpt, cfg, hfName(l, LINEAR_PREFIX[name]), layout.attention[name], format, at, out);
    }
    await vector(hfName(l, "self_attn.q_proj.bias"), layout.qBias, at);
    await vector(hfName(l, "self_attn.k_proj.bias"), layout.kBias, at);
    await vector(hfName(l, "self_attn.v_proj.bias"), layout.vBias, at);
    await vector(hfName(l, "input_layernorm.weight"), layout.inputNorm, at);
    await vector(hfName(l, "post_attention_layernorm.weight"), layout.postNorm, at);
    const [I, d] = linearShape(cfg, "gate_proj");
    const gate = await convertWhole(ckpt, cfg, hfName(l, LINEAR_PREFIX.gate_proj), I, d, format);
    const up = await convertWhole(ckpt, cfg, hfName(l, LINEAR_PREFIX.up_proj), I, d, format);
    const down = await convertWhole(ckpt, cfg, hfName(l, LINEAR_PREFIX.down_proj), d, I, format);
    for (const c of layout.chunks) {
      await emitBlock(gate, c.c0, 0, c.gate, at + c.offset, out);
      await emitBlock(up, c.c0, 0, c.up, at + c.offset, out);
      await emitBlock(down, 0, c.c0, c.down, at + c.offset, out);
    }
    progress(`layer ${l}`);
  }
  await vector(
    "model.norm.weight",
    { length: cfg.hiddenSize, offset: 0, bytes: cfg.hiddenSize * 4 },
    plan.norm.offset,
  );
  progress("final norm");
  if (plan.lmHead) {
    await convertMatrix(ckpt, cfg, "lm_head", vocab, format, plan.lmHead.offset, out);
    progress("lm_head");
  }
  await out.padTo(plan.fileBytes);
  return header;
}

/** An opened pack: its header, the layer layout, and reads into caller buffers. */
export interface Pack {
  readonly header: PackHeader;
  readonly config: ModelConfig;
  readonly layout: LayerLayout;
  /** Layout of the embedding (and of an untied LM head), offsets relative to the section. */
  readonly vocabSlot: MatrixSlot;
  readonly source: WeightSource;
  /** Reads layer `l`'s blob into `into` (exactly `layout.bytes` long). */
  readLayer(l: number, into: Uint8Array): Promise<void>;
  /** Reads layer `l`'s attention block into `into` (exactly `layout.attentionBytes` long). */
  readAttention(l: number, into: Uint8Array): Promise<void>;
  /** Reads MLP chunk `c` of layer `l` into `into` (exactly `layout.chunks[c].bytes` long). */
  readMlpChunk(l: number, c: number, into: Uint8Array): Promise<void>;
  /** Reads the final norm weight. */
  readNorm(into: Float32Array): Promise<void>;
  /**
   * Reads vocabulary rows [r0, r1) of the embedding (or the untied LM head with `head: true`) into views
   * sized exactly for those rows: row data and, for quantized packs, scales and biases.
   */
  readVocabRows(r0: number, r1: number, into: VocabRowViews, head?: boolean): Promise<void>;
}

/** Caller buffers for vocabulary rows (each exactly `rows ×` its row size). */
export interface VocabRowViews {
  data: Uint8Array;
  scales?: Uint8Array;
  biases?: Uint8Array;
}

/** Options for {@linkcode openPack}. */
export interface OpenPackOptions {
  /** Refuse a pack whose fingerprint differs (it was made from other weights). */
  fingerprint?: string;
  /** Refuse a pack of another format. */
  format?: PackFormat;
}

/** Thrown when a pack is stale, foreign, truncated or corrupt; callers rebuild it. */
export class StalePackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StalePackError";
  }
}

/** Opens a pack and checks it against what the caller expects. */
export async function openPack(source: WeightSource, options: OpenPackOptions = {}): Promise<Pack> {
  const size = await source.size();
  if (size < 16) throw new StalePackError(`${source.name}: not a mesp pack (too short)`);
  const pre = new Uint8Array(16);
  await source.read(0, pre);
  if (new TextDecoder().decode(pre.subarray(0, 8)) !== MAGIC) {
    throw new StalePackError(`${source.name}: not a mesp pack`);
  }
  const dv = new DataView(pre.buffer);
  if (dv.getUint32(8, true) !== VERSION) {
    throw new StalePackError(`${source.name}: pack version ${dv.getUint32(8, true)}`);
  }
  const len = dv.getUint32(12, true);
  if (16 + len > size) throw new StalePackError(`${source.name}: truncated header`);
  const hb = new Uint8Array(len);
  await source.read(16, hb);
  let header: PackHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(hb));
  } catch {
    throw new StalePackError(`${source.name}: corrupt header`);
  }
  if (header.fileBytes !== size) {
    throw new StalePackError(
      `${source.name}: file is ${size} bytes, header says ${header.fileBytes} (truncated?)`,
    );
  }
  if (options.fingerprint !== undefined && header.fingerprint !== options.fingerprint) {
    throw new StalePackError(`${source.name}: made from different weights than ${header.source}`);
  }
  if (options.format !== undefined && header.format !== options.format) {
    throw new StalePackError(`${source.name}: format ${header.format}, wanted ${options.format}`);
  }
  const expect = planPack(header.config, header.format, header.mlpChunk);
  if (
    JSON.stringify(expect.layers) !== JSON.stringify(header.layers) || expect.fileBytes !== header.fileBytes
  ) {
    throw new StalePackError(`${source.name}: layout does not match this version of mesp`);
  }
  const cfg = header.config;
  const layout = layerLayout(cfg, header.format, header.bf16Scales, header.mlpChunk);
  const vocabSlot = matrixSlot(cfg.vocabSize, cfg.hiddenSize, header.format, header.bf16Scales, 0);
  return {
    header,
    config: cfg,
    layout,
    vocabSlot,
    source,
    readLayer: (l, into) => {
      if (into.length !== layout.bytes) {
        throw new Error(`layer buffer is ${into.length} bytes, need ${layout.bytes}`);
      }
      return source.read(header.layers[l].offset, into);
    },
    readAttention: (l, into) => {
      if (into.length !== layout.attentionBytes) {
        throw new Error(`attention buffer must be ${layout.attentionBytes} bytes`);
      }
      return source.read(header.layers[l].offset, into);
    },
    readMlpChunk: (l, c, into) => {
      const ch = layout.chunks[c];
      if (into.length !== ch.bytes) throw new Error(`MLP chunk ${c} buffer must be ${ch.bytes} bytes`);
      return source.read(header.layers[l].offset + ch.offset, into);
    },
    readNorm: (into) =>
      source.read(header.norm.offset, new Uint8Array(into.buffer, into.byteOffset, cfg.hiddenSize * 4)),
    async readVocabRows(r0, r1, into, head = false) {
      const base = head ? header.lmHead?.offset : header.embed.offset;
      if (base === undefined) throw new Error("this model has no separate LM head (tied embeddings)");
      const s = vocabSlot;
      if (r0 < 0 || r1 > cfg.vocabSize || into.data.length !== (r1 - r0) * s.rowBytes) {
        throw new Error(`vocabulary rows [${r0}, ${r1}) do not fit the vocabulary or the buffer`);
      }
      // all parts at once: a source that can runs them concurrently
      const data = source.read(base + s.offset + r0 * s.rowBytes, into.data);
      if (!s.scaleRowBytes) return await data;
      await Promise.all([
        data,
        source.read(base + s.scalesOffset + r0 * s.scaleRowBytes, into.scales!),
        source.read(base + s.biasesOffset + r0 * s.scaleRowBytes, into.biases!),
      ]);
    },
  };
}

/**
 * A fingerprint of a checkpoint's contents, cheap to compute: the config text, every safetensors file's
 * name, size and header, and 16 samples of 4 KiB spread over its data. A pack records it so weights that
 * changed in place (same shapes, new values) are noticed.
 */
export async function checkpointFingerprint(files: ModelFiles, ckpt: Checkpoint): Promise<string> {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  parts.push(enc.encode((await files.readText("config.json")) ?? ""));
  for (const [name, f] of [...ckpt.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const size = await f.source.size();
    parts.push(enc.encode(`${name}:${size}:${JSON.stringify([...f.tensors.values()])}`));
    const span = size - f.dataOffset;
    for (let i = 0; i < 16 && span > 0; i++) {
      const at = f.dataOffset + Math.floor((span * i) / 16);
      const sample = new Uint8Array(Math.min(4096, size - at));
      await f.source.read(at, sample);
      parts.push(sample);
    }
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}
