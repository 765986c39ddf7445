// Weight element types and their decoding to f32. The codes are shared with the host (src/runtime/kernels.ts).
//
// Quantized layouts are MLX affine with groups of 64 along a row:
//   w[n, k] = scale[n, k/64] * q[n, k] + bias[n, k/64]
// q4: byte b of a row holds element 2b in its low nibble and 2b+1 in its high nibble.
// q8: one byte per element. Scales and biases are one per group, row-major [rows, cols/64], in f16 — or in
// bf16 when the dtype code carries SCALES_BF16 (MLX checkpoints keep the model's bf16 scales, loaded as is).

export const F32: i32 = 0;
export const F16: i32 = 1;
export const BF16: i32 = 2;
export const Q8: i32 = 3;
export const Q4: i32 = 4;
export const SCALES_BF16: i32 = 8;
export const GROUP: i32 = 64;

/** IEEE half (as its 16 bits) to f32, exact, including subnormals, infinities and NaN. */
// @ts-ignore: decorator
@inline export function f16_to_f32(h: u32): f32 {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp == 0x1f) return reinterpret<f32>(sign | 0x7f800000 | (mant << 13));
  if (exp == 0) {
    // subnormal or zero: mant * 2^-24
    const v = <f32>mant * reinterpret<f32>(0x33800000);
    return sign ? -v : v;
  }
  return reinterpret<f32>(sign | ((exp + 112) << 23) | (mant << 13));
}

/** Four halves (the low 64 bits of `h`, as u16 lanes) to f32x4. */
// @ts-ignore: decorator
@inline export function f16x4_to_f32x4(h: v128): v128 {
  const w = i32x4.extend_low_i16x8_u(h);
  const sign = v128.and(w, i32x4.splat(0x8000));
  const em = v128.and(w, i32x4.splat(0x7fff));
  // exponent/mantissa shifted into f32 position, scaled by 2^112 to rebias (handles subnormals too)
  let v = f32x4.mul(i32x4.shl(em, 13), f32x4.splat(reinterpret<f32>(0x77800000)));
  // inf / NaN: exponent field all ones
  const special = i32x4.ge_s(em, i32x4.splat(0x7c00));
  v = v128.bitselect(v128.or(i32x4.shl(em, 13), i32x4.splat(0x7f800000)), v, special);
  return v128.or(v, i32x4.shl(sign, 16));
}

/** Four bfloat16 (low 64 bits of `h`) to f32x4. */
// @ts-ignore: decorator
@inline export function bf16x4_to_f32x4(h: v128): v128 {
  return i32x4.shl(i32x4.extend_low_i16x8_u(h), 16);
}

/** Bytes per element for a dense dtype (f32, f16, bf16); 0 for quantized ones. */
export function dense_size(dtype: i32): i32 {
  if (dtype == F32) return 4;
  if (dtype == F16 || dtype == BF16) return 2;
  return 0;
}

/**
 * Decodes `len` elements of row `row` starting at column `col0` of a weight matrix with row stride `ld`
 * elements into dst (f32, contiguous). For quantized dtypes `ld` and the group grid are in elements of the
 * row; `scales`/`biases` are f16 [rows, ld/64].
 */
export function decode_row(dtype: i32, w: usize, ld: i32, scales: usize, biases: usize,
                           row: i32, col0: i32, len: i32, dst: usize): void {
  let c = col0;
  const end = col0 + len;
  if (dtype == F32) {
    let src = w + ((<usize>row * ld + c) << 2);
    let i = 0;
    for (; i + 4 <= len; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
    for (; i < len; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
    return;
  }
  if (dtype == F16 || dtype == BF16) {
    const src = w + ((<usize>row * ld + c) << 1);
    let i = 0;
    if (dtype == F16) {
      for (; i + 4 <= len; i += 4)
        v128.store(dst + (<usize>i << 2), f16x4_to_f32x4(v128.load64_zero(src + (<usize>i << 1))));
      for (; i < len; i++) store<f32>(dst + (<usize>i << 2), f16_to_f32(load<u16>(src + (<usize>i << 1))));
    } else {
      for (; i + 4 <= len; i += 4)
        v128.store(dst + (<usize>i << 2), bf16x4_to_f32x4(v128.load64_zero(src + (<usize>i << 1))));
      for (; i < len; i++) store<f32>(dst + (<usize>i << 2), reinterpret<f32>(<u32>load<u16>(src + (<usize>i << 1)) << 16));
    }
    return;
  }
  const groups = ld / GROUP;
  const srow = scales + ((<usize>row * groups) << 1);
  const brow = biases + ((<usize>row * groups) << 1);
  const sbf = (dtype & SCALES_BF16) != 0;
  let out = dst;
  if ((dtype & ~SCALES_BF16) == Q8) {
    const q = w + <usize>row * ld;
    while (c < end) {
      const g = c / GROUP;
      const gend = min(end, (g + 1) * GROUP);
      const s = half(srow, g, sbf), b = half(brow, g, sbf);
      const vs = f32x4.splat(s), vb = f32x4.splat(b);
      for (; c + 4 <= gend; c += 4, out += 16) {
        const v = f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(q + c))));
        v128.store(out, f32x4.add(f32x4.mul(v, vs), vb));
      }
      for (; c < gend; c++, out += 4) store<f32>(out, s * <f32>load<u8>(q + c) + b);
    }
    return;
  }
  // Q4
  const q = w + (<usize>row * ld >> 1);
  while (c < end) {
    const g = c / GROUP;
    const gend = min(end, (g + 1) * GROUP);
    const s = half(srow, g, sbf), b = half(brow, g, sbf);
    // scalar until 8-aligned (one u32 = 8 nibbles)
    for (; c < gend && (c & 7) != 0; c++, out += 4) store<f32>(out, s * <f32>q4_at(q, c) + b);
    const vs = f32x4.splat(s), vb = f32x4.splat(b);
    for (; c + 8 <= gend; c += 8, out += 32) {
      // 4 bytes → 8 nibbles in element order: lo0 hi0 lo1 hi1 ...
      const bytes = i16x8.extend_low_i8x16_u(v128.load32_zero(q + (<usize>c >> 1)));
      const lo = v128.and(bytes, i16x8.splat(0x0f));
      const hi = i16x8.shr_u(bytes, 4);
      const inter = v128.shuffle<u16>(lo, hi, 0, 8, 1, 9, 2, 10, 3, 11);
      const v0 = f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(inter));
      const v1 = f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(inter));
      v128.store(out, f32x4.add(f32x4.mul(v0, vs), vb));
      v128.store(out, f32x4.add(f32x4.mul(v1, vs), vb), 16);
    }
    for (; c < gend; c++, out += 4) store<f32>(out, s * <f32>q4_at(q, c) + b);
  }
}

// Element g of a row of f16 or bf16 values.
// @ts-ignore: decorator
@inline function half(row: usize, g: i32, bf: bool): f32 {
  const h = <u32>load<u16>(row + (<usize>g << 1));
  return bf ? reinterpret<f32>(h << 16) : f16_to_f32(h);
}

// @ts-ignore: decorator
@inline function q4_at(rowq: usize, c: i32): u32 {
  const byte = <u32>load<u8>(rowq + (<usize>c >> 1));
  return (c & 1) ? byte >> 4 : byte & 0x0f;
}
