/**
 * Reading a checkpoint's matrices by rows: as f32 whatever the stored dtype (F32, F16, BF16, MLX affine
 * quantized), or an MLX matrix's raw bits, scales and biases.
 *
 * @module
 */
import type { WeightSource } from "../io/source.ts";
import { bf16BitsToF32, f16BitsToF32 } from "./dtype.ts";
import { GROUP } from "./pack_layout.ts";
import { assertFinite, assertFiniteHalf } from "./finite.ts";
import type { Checkpoint, TensorInfo } from "./safetensors.ts";

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
  } else {
    const { file, info } = ckpt.get(`${base}.weight`);
    await readDenseRows(file.source, info, r0, r1, into);
  }
  assertFinite(into, `${base}.weight in ${ckpt.name}`, into.length / (r1 - r0), r0);
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

export async function readMlxRows(
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
  assertFiniteHalf(scales, "bf16", `${base}.scales in ${ckpt.name}`);
  assertFiniteHalf(biases, "bf16", `${base}.biases in ${ckpt.name}`);
  return { data, scales, biases };
}
