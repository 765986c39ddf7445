/**
 * Reading a checkpoint's matrices by rows: as f32 whatever the stored dtype (F32, F16, BF16, MLX affine
 * quantized), or an MLX matrix's raw bits, scales and biases.
 *
 * @module
 */
import type { WeightSource } from "../io/source.ts";
import { bf16BitsToF32, f16BitsToF32 } from "./dtype.ts";
import { GROUP } from "./pack_layout.ts";
import { assertFinite, assertFiniteHalf, firstNonFinite } from "./finite.ts";
import type { Checkpoint, TensorInfo } from "./safetensors.ts";

/**
 * Reads blocks (rows [r0, r1) × columns [c0, c1)) of checkpoint matrices through one buffer it keeps and
 * grows only to the largest block asked for: whole rows are read (the file is row-major), the columns are
 * cut out. A writer that asks for blocks of bounded size therefore holds no tensor whole.
 */
export class MatrixBlocks {
  readonly #ckpt: Checkpoint;
  #raw = new Uint8Array(0);
  #mlx = { data: new Uint8Array(0), scales: new Uint16Array(0), biases: new Uint16Array(0) };

  constructor(ckpt: Checkpoint) {
    this.#ckpt = ckpt;
  }

  #rawBuffer(bytes: number): Uint8Array {
    if (this.#raw.length < bytes) this.#raw = new Uint8Array(bytes);
    return this.#raw.subarray(0, bytes);
  }

  /** The block of `base` as f32 (row-major `[r1 − r0, c1 − c0]`) in `into`, whatever its stored dtype. */
  async f32(base: string, r0: number, r1: number, c0: number, c1: number, into: Float32Array): Promise<void> {
    const ckpt = this.#ckpt, w = c1 - c0, n = r1 - r0;
    if (ckpt.has(`${base}.scales`)) {
      const { cols, bits } = mlxShape(ckpt, base);
      const { data, scales, biases } = await this.mlx(base, r0, r1, c0, c1, cols, bits);
      const groups = w / GROUP, rowBytes = (w * bits) / 8;
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < w; c++) {
          const g = r * groups + Math.floor(c / GROUP);
          const qv = bits === 4
            ? (data[r * rowBytes + (c >> 1)] >> ((c & 1) * 4)) & 15
            : data[r * rowBytes + c];
          into[r * w + c] = Math.fround(
            Math.fround(bf16BitsToF32(scales[g]) * qv) + bf16BitsToF32(biases[g]),
          );
        }
      }
    } else {
      const { file, info } = ckpt.get(`${base}.weight`);
      const cols = info.shape.length === 1 ? info.shape[0] : info.shape[1];
      const size = info.dtype === "F32" ? 4 : info.dtype === "F16" || info.dtype === "BF16" ? 2 : 0;
      if (!size) throw new Error(`tensor ${info.name} has dtype ${info.dtype}; expected F32, F16 or BF16`);
      const raw = this.#rawBuffer(n * cols * size);
      await file.source.read(info.offset + r0 * cols * size, raw);
      if (size === 4) {
        const f = new Float32Array(raw.buffer, 0, n * cols);
        for (let r = 0; r < n; r++) into.set(f.subarray(r * cols + c0, r * cols + c1), r * w);
      } else {
        const h = new Uint16Array(raw.buffer, 0, n * cols);
        const conv = info.dtype === "F16" ? f16BitsToF32 : bf16BitsToF32;
        for (let r = 0; r < n; r++) {
          for (let c = 0; c < w; c++) into[r * w + c] = conv(h[r * cols + c0 + c]);
        }
      }
    }
    const bad = firstNonFinite(into.subarray(0, n * w));
    if (bad >= 0) {
      throw new Error(
        `${base}.weight in ${ckpt.name}: non-finite value ${into[bad]} at row ${r0 + Math.floor(bad / w)}, ` +
          `column ${c0 + (bad % w)}`,
      );
    }
  }

  /**
   * The block of the MLX matrix `base` (`cols` columns of `bits`, 64-aligned columns) as its raw codes
   * (`[n, w·bits/8]`), bf16 scales and biases (`[n, w/64]`), in buffers reused by the next call.
   */
  async mlx(base: string, r0: number, r1: number, c0: number, c1: number, cols: number, bits: number) {
    const ckpt = this.#ckpt, n = r1 - r0, w = c1 - c0;
    const wt = ckpt.get(`${base}.weight`), s = ckpt.get(`${base}.scales`), b = ckpt.get(`${base}.biases`);
    if (s.info.dtype === "F16" || b.info.dtype === "F16") {
      throw new Error(`${base} in ${ckpt.name}: f16 MLX scales are not supported yet (bf16 expected)`);
    }
    const rowBytes = (cols * bits) / 8, groups = cols / GROUP;
    const outRow = (w * bits) / 8, outGroups = w / GROUP, g0 = c0 / GROUP, b0 = (c0 * bits) / 8;
    const out = this.#mlx;
    if (out.data.length < n * outRow) out.data = new Uint8Array(n * outRow);
    if (out.scales.length < n * outGroups) {
      out.scales = new Uint16Array(n * outGroups);
      out.biases = new Uint16Array(n * outGroups);
    }
    const data = out.data.subarray(0, n * outRow);
    const scales = out.scales.subarray(0, n * outGroups), biases = out.biases.subarray(0, n * outGroups);
    const raw = this.#rawBuffer(n * rowBytes);
    await wt.file.source.read(wt.info.offset + r0 * rowBytes, raw);
    for (let r = 0; r < n; r++) {
      data.set(raw.subarray(r * rowBytes + b0, r * rowBytes + b0 + outRow), r * outRow);
    }
    const half = new Uint16Array(this.#rawBuffer(n * groups * 2).buffer, 0, n * groups);
    for (const [t, into] of [[s, scales], [b, biases]] as const) {
      await t.file.source.read(
        t.info.offset + r0 * groups * 2,
        new Uint8Array(half.buffer, 0, n * groups * 2),
      );
      for (let r = 0; r < n; r++) {
        into.set(half.subarray(r * groups + g0, r * groups + g0 + outGroups), r * outGroups);
      }
    }
    assertFiniteHalf(scales, "bf16", `${base}.scales in ${ckpt.name}`);
    assertFiniteHalf(biases, "bf16", `${base}.biases in ${ckpt.name}`);
    return { data, scales, biases };
  }
}

/** Reads a whole (small) tensor as f32: norms and biases. */
export async function readVectorF32(ckpt: Checkpoint, name: string, length: number): Promise<Float32Array> {
  const { file, info } = ckpt.get(name);
  if (info.shape.length !== 1 || info.shape[0] !== length) {
    throw new Error(`tensor ${name} in ${ckpt.name} has shape [${info.shape}], expected [${length}]`);
  }
  const out = new Float32Array(length);
  await readDenseRows(file.source, { ...info, shape: [1, length] }, 0, 1, out);
  assertFinite(out, `tensor ${name} in ${ckpt.name}`);
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

export function mlxShape(ckpt: Checkpoint, base: string): { rows: number; cols: number; bits: number } {
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
