/**
 * MLX-compatible affine quantization (docs/formats.md): a row-major f32 matrix `[rows, cols]` is cut
 * into groups of 64 consecutive elements along each row; every group stores a `scale` and a `bias` (as
 * half-precision bits, f16 or bf16) and one unsigned 4- or 8-bit code per element, and decodes as
 * `w = scale · q + bias`.
 *
 * Rows are independent, so callers quantize big matrices in chunks of whole rows and never hold the whole
 * matrix in f32. No Deno APIs: this runs wherever the rest of the model I/O runs.
 *
 * @module
 */
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "./dtype.ts";

/** Elements per (scale, bias) group: MLX's default and the only size the kernels decode. */
export const GROUP_SIZE = 64;

/** Storage type of the per-group scales and biases: f16 (mesp's own packs) or bf16 (MLX checkpoints). */
export type ScaleDtype = "f16" | "bf16";

/** Bits per quantized element. */
export type QuantBits = 4 | 8;

/** A quantized block of whole rows. */
export interface Quantized {
  /** Codes: q4 packs element `2b` in the low nibble of byte `b` and `2b+1` in the high nibble; q8 one byte each. */
  q: Uint8Array;
  /** Per-group scales as raw half bits, row-major `[rows, cols/64]`. */
  scales: Uint16Array;
  /** Per-group biases (the group minimum) as raw half bits, `[rows, cols/64]`. */
  biases: Uint16Array;
}

/** Options for {@linkcode quantize}. */
export interface QuantizeOptions {
  /** 4 (default) or 8. */
  bits?: QuantBits;
  /** Half type of scales and biases (default `"f16"`). */
  scaleDtype?: ScaleDtype;
  /** Output buffers of exactly the right sizes, reused instead of allocating (streaming callers). */
  into?: Quantized;
  /** Tensor name for error messages. */
  name?: string;
  /** Index of the first row of `w` in the whole tensor, for error messages (default 0). */
  rowOffset?: number;
  /** Compute only scales and biases; `q` is neither written nor required to have the right size. */
  scalesOnly?: boolean;
}

/** Options for {@linkcode dequantize}. */
export interface DequantizeOptions {
  /** 4 (default) or 8. */
  bits?: QuantBits;
  /** Half type of scales and biases (default `"f16"`). */
  scaleDtype?: ScaleDtype;
  /** Output buffer of exactly `rows · cols` elements. */
  into?: Float32Array;
  /** Tensor name for error messages. */
  name?: string;
}

/** Byte length of the codes of `rows × cols` elements at `bits`. */
export function quantizedBytes(rows: number, cols: number, bits: QuantBits): number {
  return (rows * cols * bits) / 8;
}

function checkBits(bits: number, where: string): asserts bits is QuantBits {
  if (bits !== 4 && bits !== 8) throw new Error(`${where}: bits must be 4 or 8, got ${bits}`);
}

function checkCols(cols: number, where: string): void {
  if (!Number.isSafeInteger(cols) || cols <= 0 || cols % GROUP_SIZE !== 0) {
    throw new Error(`${where}: the row length must be a positive multiple of ${GROUP_SIZE}, got ${cols}`);
  }
}

function checkLength(what: string, actual: number, expected: number, where: string): void {
  if (actual !== expected) {
    throw new RangeError(`${where}: ${what} has ${actual} elements, expected ${expected}`);
  }
}

/**
 * Quantizes the rows of `w` (row-major, `w.length / cols` rows of `cols` elements, `cols % 64 === 0`).
 *
 * Per group: `scale = (max − min) / (2^bits − 1)` and `bias = min`, both rounded to the scale dtype; then
 * `q = clamp(round((w − bias) / scale), 0, 2^bits − 1)` computed with the scale and bias *as stored*, so
 * that `scale · q + bias` lands as close to `w` as the rounded scale allows. Ties (`(w − bias)/scale`
 * exactly `k + ½`) round to the even code. A group whose range is zero (or whose scale underflows to 0)
 * gets scale 0, codes 0 and bias = the (rounded) value. Throws, naming the tensor, row and column, on a
 * non-finite value or a scale/bias beyond the half type's range.
 *
 * @example
 * ```ts
 * const w = Float32Array.from({ length: 64 }, (_, i) => (i % 16) * 0.25 - 1);
 * const { q, scales, biases } = quantize(w, 64, { bits: 4, scaleDtype: "bf16" });
 * q[0]; // 0x10: element 0 (code 0) in the low nibble, element 1 (code 1) in the high one
 * ```
 */
export function quantize(w: Float32Array, cols: number, options: QuantizeOptions = {}): Quantized {
  const name = options.name ?? "quantize";
  const bits = options.bits ?? 4;
  checkBits(bits, name);
  checkCols(cols, name);
  if (w.length % cols !== 0) {
    throw new RangeError(`${name}: ${w.length} values are not a whole number of rows of ${cols}`);
  }
  const rows = w.length / cols;
  const groups = cols / GROUP_SIZE;
  const bf16 = (options.scaleDtype ?? "f16") === "bf16";
  const toHalf = bf16 ? f32ToBf16Bits : f32ToF16Bits;
  const fromHalf = bf16 ? bf16BitsToF32 : f16BitsToF32;
  const out = options.into ?? {
    q: new Uint8Array(options.scalesOnly ? 0 : quantizedBytes(rows, cols, bits)),
    scales: new Uint16Array(rows * groups),
    biases: new Uint16Array(rows * groups),
  };
  if (!options.scalesOnly) checkLength("into.q", out.q.length, quantizedBytes(rows, cols, bits), name);
  checkLength("into.scales", out.scales.length, rows * groups, name);
  checkLength("into.biases", out.biases.length, rows * groups, name);
  const rowOffset = options.rowOffset ?? 0;
  const levels = (1 << bits) - 1;
  const q = out.q;

  for (let g = 0; g < rows * groups; g++) {
    const start = g * GROUP_SIZE;
    const end = start + GROUP_SIZE;
    let min = Infinity;
    let max = -Infinity;
    let poison = 0; // v·0 is NaN exactly when v is NaN or ±∞: one check per group instead of per element
    for (let i = start; i < end; i++) {
      const v = w[i];
      poison += v * 0;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    if (poison !== 0) {
      const i = w.subarray(start, end).findIndex((v) => !Number.isFinite(v)) + start;
      const row = Math.floor(i / cols);
      throw new Error(`${name}: row ${row + rowOffset}, column ${i - row * cols}: non-finite value ${w[i]}`);
    }
    const scaleBits = toHalf((max - min) / levels);
    const biasBits = toHalf(min);
    const scale = fromHalf(scaleBits);
    const bias = fromHalf(biasBits);
    if (!Number.isFinite(scale) || !Number.isFinite(bias)) {
      const row = Math.floor(g / groups);
      throw new Error(
        `${name}: row ${row + rowOffset}, group ${g - row * groups}: range [${min}, ${max}] does not fit ` +
          `in ${bf16 ? "bf16" : "f16"} scales/biases`,
      );
    }
    out.scales[g] = scaleBits;
    out.biases[g] = biasBits;
    if (options.scalesOnly) continue;
    if (scale === 0) {
      q.fill(0, (start * bits) >> 3, (end * bits) >> 3);
      continue;
    }
    for (let i = start; i < end; i++) {
      // clamp(round((w − bias) / scale)), ties to even (like MLX's `mx.round`, NumPy and torch); inlined
      const x = (w[i] - bias) / scale;
      // floor(x + ½) rather than Math.round: V8 compiles the latter with a data-dependent branch that
      // mispredicts on random weights (3× slower). x + ½ is exact except within 2^-53 of a tie.
      let r = Math.floor(x + 0.5);
      if (r - x === 0.5 && (r & 1) !== 0) r--; // ties to even; `&` is exact: an out-of-range r is clamped
      r = r < 0 ? 0 : r > levels ? levels : r;
      if (bits === 8) q[i] = r;
      else if ((i & 1) === 0) q[i >> 1] = r; // element 2b: low nibble of byte b
      else q[i >> 1] |= r << 4;
    }
  }
  return out;
}

/**
 * Decodes quantized rows back to f32 exactly like the wasm kernel (`asm/kernels/dtype.ts` `decode_row`):
 * `w = fround(fround(scale · q) + bias)`, a float32 multiply then a float32 add, never fused.
 * `cols` is the row length in elements; the row count comes from the scales.
 */
export function dequantize(qz: Quantized, cols: number, options: DequantizeOptions = {}): Float32Array {
  const name = options.name ?? "dequantize";
  const bits = options.bits ?? 4;
  checkBits(bits, name);
  checkCols(cols, name);
  const groups = cols / GROUP_SIZE;
  checkLength("biases", qz.biases.length, qz.scales.length, name);
  if (qz.scales.length % groups !== 0) {
    throw new RangeError(`${name}: ${qz.scales.length} scales are not a whole number of rows of ${groups}`);
  }
  const rows = qz.scales.length / groups;
  checkLength("q (bytes)", qz.q.length, quantizedBytes(rows, cols, bits), name);
  const out = options.into ?? new Float32Array(rows * cols);
  checkLength("into", out.length, rows * cols, name);
  const fromHalf = (options.scaleDtype ?? "f16") === "bf16" ? bf16BitsToF32 : f16BitsToF32;
  const q = qz.q;
  // Scale and bias are f32 values, so f64 `scale * q` is exact and rounding it with fround is the f32
  // multiply; the f64 sum of two f32s rounded to f32 equals the f32 add (53 ≥ 2·24 + 2 bits).
  for (let g = 0; g < rows * groups; g++) {
    const scale = fromHalf(qz.scales[g]);
    const bias = fromHalf(qz.biases[g]);
    const start = g * GROUP_SIZE;
    if (bits === 4) {
      for (let i = start, b = start >> 1; i < start + GROUP_SIZE; i += 2, b++) {
        const byte = q[b];
        out[i] = Math.fround(scale * (byte & 15)) + bias;
        out[i + 1] = Math.fround(scale * (byte >>> 4)) + bias;
      }
    } else {
      for (let i = start; i < start + GROUP_SIZE; i++) out[i] = Math.fround(scale * q[i]) + bias;
    }
  }
  return out;
}

/**
 * The codes as MLX's `uint32` weight tensor: the same little-endian bytes (for q4, element `8j+i` of a row
 * sits in bits `4i..4i+3` of word `j`; for q8, element `4j+i` in bits `8i..8i+7`). A view when `q` is
 * 4-byte aligned, else a copy.
 */
export function toMlxU32(q: Uint8Array): Uint32Array {
  if (q.length % 4 !== 0) throw new RangeError(`toMlxU32: ${q.length} bytes are not a whole number of u32`);
  if (q.byteOffset % 4 === 0) return new Uint32Array(q.buffer, q.byteOffset, q.length / 4);
  return new Uint32Array(q.slice().buffer);
}

/** The bytes of an MLX `uint32` weight tensor as codes for {@linkcode dequantize} (a view, no copy). */
export function fromMlxU32(u32: Uint32Array): Uint8Array {
  return new Uint8Array(u32.buffer, u32.byteOffset, u32.byteLength);
}
