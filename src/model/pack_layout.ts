/**
 * The layout of a weight pack's blobs: where each matrix and vector of a decoder layer sits in the layer's
 * blob (the attention block, then the MLP in column chunks), in the pack's element format.
 *
 * @module
 */
import type { WeightDtype } from "../runtime/kernels.ts";
import type { ModelConfig } from "./config.ts";
import { ATTENTION, type AttentionLinear, linearShape } from "./qwen2.ts";

/** Element format of a pack's matrices (norms and biases are always f32). */
export type PackFormat = "q4" | "q8" | "bf16" | "f16" | "f32";

/** Every pack format, most compact first. */
export const PACK_FORMATS: readonly PackFormat[] = ["q4", "q8", "bf16", "f16", "f32"];

/** Quantization group along a row (MLX affine). */
export const GROUP = 64;
const ALIGN = 64;

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

function dtypeOf(format: PackFormat): WeightDtype {
  return format;
}

export const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

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

/**
 * A vocabulary matrix (the embedding, an untied LM head) `[rows, cols]` as a pack stores it: row-interleaved,
 * each row's data then (quantized) its scales and biases, `rowStride` bytes a row with no padding, so a token's
 * row or a chunk of rows is one contiguous range (one read, one HTTP request).
 */
export interface VocabSlot {
  rows: number;
  cols: number;
  dtype: WeightDtype;
  /** Scales and biases are bf16 (kept from an MLX checkpoint) rather than f16. */
  bf16Scales: boolean;
  /** Bytes of one row of data, and of its scales (and of its biases; 0 unless quantized). */
  rowBytes: number;
  scaleRowBytes: number;
  /** Bytes of one stored row: `rowBytes + 2 · scaleRowBytes`. */
  rowStride: number;
  /** Total bytes (`rows · rowStride`). */
  bytes: number;
}

/** The stored layout of a `[rows, cols]` vocabulary matrix of `format` (see {@linkcode VocabSlot}). */
export function vocabSlot(rows: number, cols: number, format: PackFormat, bf16Scales: boolean): VocabSlot {
  const m = matrixSlot(rows, cols, format, bf16Scales, 0);
  const rowStride = m.rowBytes + 2 * m.scaleRowBytes;
  return {
    rows,
    cols,
    dtype: m.dtype,
    bf16Scales: m.bf16Scales,
    rowBytes: m.rowBytes,
    scaleRowBytes: m.scaleRowBytes,
    rowStride,
    bytes: rows * rowStride,
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

/**
 * Whether the source's quantized weights can be copied as they are (an MLX checkpoint packed into its own
 * bit width keeps its bits and bf16 scales: no re-quantization).
 */
export function copiesQuantized(cfg: ModelConfig, format: PackFormat): boolean {
  const q = cfg.quantization;
  return q !== undefined && q.groupSize === GROUP &&
    ((q.bits === 4 && format === "q4") || (q.bits === 8 && format === "q8"));
}
