// Flat f32 array helpers (gradient axpy and scaling, clipping norms, bf16 checkpoints) and the f32 dot
// product the row-wise kernels share. Every reduction sums in an order fixed by n alone.

import { fma, hsum } from "./simd";

/**
 * Σ a[i]·b[i], i < n, in f32: two f32x4 accumulators over blocks of 8, then the scalar tail. The order
 * depends only on n. a, b: [n].
 */
// @ts-ignore: decorator
@inline export function dot_f32(a: usize, b: usize, n: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 2;
    s0 = fma(v128.load(a + o), v128.load(b + o), s0);
    s1 = fma(v128.load(a + o, 16), v128.load(b + o, 16), s1);
  }
  if (i + 4 <= n) {
    const o = <usize>i << 2;
    s0 = fma(v128.load(a + o), v128.load(b + o), s0);
    i += 4;
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/** y += alpha·x (multiply, then add: the same bits in both variants). y, x: [n]. */
export function axpy(y: usize, alpha: f32, x: usize, n: i32): void {
  const va = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.add(v128.load(y + o), f32x4.mul(va, v128.load(x + o))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(y + o) + alpha * load<f32>(x + o));
  }
}

/** x *= alpha. x: [n]. */
export function scale(x: usize, alpha: f32, n: i32): void {
  const va = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(x + o, f32x4.mul(v128.load(x + o), va));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(x + o, load<f32>(x + o) * alpha);
  }
}

/** Σ x[i]² in f64 (gradient clipping, finiteness checks), in the fixed order of `dot`. x: [n]. */
export function sum_squares(x: usize, n: i32): f64 {
  return dot(x, x, n);
}

/**
 * Σ x[i]·y[i] in f64 (f32 products are exact in f64). Fixed order: elements 4k, 4k+1 go to one f64x2
 * accumulator and 4k+2, 4k+3 to another; then lanes, then the tail. x, y: [n].
 */
function dot(x: usize, y: usize, n: i32): f64 {
  let s0 = f64x2.splat(0), s1 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const a = v128.load(x + o), b = v128.load(y + o);
    s0 = f64x2.add(s0, f64x2.mul(f64x2.promote_low_f32x4(a), f64x2.promote_low_f32x4(b)));
    const ah = v128.shuffle<f32>(a, a, 2, 3, 2, 3), bh = v128.shuffle<f32>(b, b, 2, 3, 2, 3);
    s1 = f64x2.add(s1, f64x2.mul(f64x2.promote_low_f32x4(ah), f64x2.promote_low_f32x4(bh)));
  }
  const s = f64x2.add(s0, s1);
  let t = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (; i < n; i++) t += <f64>load<f32>(x + (<usize>i << 2)) * <f64>load<f32>(y + (<usize>i << 2));
  return t;
}

/**
 * dst = bf16(src), rounding to nearest even as torch does (NaN stays NaN). dst: u16 [n], src: [n]. For layer
 * checkpoints kept in half the memory; bf16 → f32 is `decode_row` with the BF16 dtype.
 */
export function f32_to_bf16(dst: usize, src: usize, n: i32): void {
  let i = 0;
  const bias = i32x4.splat(0x7fff), one = i32x4.splat(1), nan = i32x4.splat(0x7fc00000);
  for (; i + 8 <= n; i += 8) {
    const a = v128.load(src + (<usize>i << 2)), b = v128.load(src + (<usize>i << 2), 16);
    const ra = bf16_round(a, bias, one, nan), rb = bf16_round(b, bias, one, nan);
    // keep the high halves of the 8 rounded words
    v128.store(dst + (<usize>i << 1), i16x8.shuffle(ra, rb, 1, 3, 5, 7, 9, 11, 13, 15));
  }
  for (; i < n; i++) {
    const u = load<u32>(src + (<usize>i << 2));
    const r: u32 = (u & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : u + 0x7fff + ((u >> 16) & 1);
    store<u16>(dst + (<usize>i << 1), <u16>(r >> 16));
  }
}

// @ts-ignore: decorator
@inline function bf16_round(x: v128, bias: v128, one: v128, nan: v128): v128 {
  const r = i32x4.add(i32x4.add(x, bias), v128.and(i32x4.shr_u(x, 16), one));
  const isNan = f32x4.ne(x, x);
  return v128.bitselect(nan, r, isNan);
}
