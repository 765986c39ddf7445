/**
 * Weight descriptors: where a GEMM's weight operand lives in linear memory and how it is stored.
 *
 * @module
 */
import { DTYPE, type WeightDtype } from "./kernels.ts";

/** Where a weight operand lives in linear memory. Quantized ones carry f16 scales and biases [rows, ld/64]. */
export interface WeightRef {
  dtype: WeightDtype;
  /** Byte offset of the data. */
  ptr: number;
  /** Row stride in elements (a multiple of 64 for q4/q8). */
  ld: number;
  /** Byte offset of the scales (q4/q8 only). */
  scales: number;
  /** Byte offset of the biases (q4/q8 only). */
  biases: number;
  /** Scales and biases are bf16 (MLX checkpoints) instead of f16. */
  bf16Scales?: boolean;
}

/** The kernel's dtype code for a weight (quantized dtypes flag bf16 scales with bit 3). */
export function dtypeCode(w: WeightRef): number {
  const quantized = w.dtype === "q4" || w.dtype === "q8";
  return DTYPE[w.dtype] | (quantized && w.bf16Scales ? SCALES_BF16 : 0);
}

/** Flag on a quantized dtype code: scales and biases are bf16 (shared with `asm/kernels/dtype.ts`). */
export const SCALES_BF16 = 8;

/** A dense f32 weight descriptor. */
export function f32Ref(ptr: number, ld: number): WeightRef {
  return { dtype: "f32", ptr, ld, scales: 0, biases: 0 };
}
