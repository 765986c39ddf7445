// SIMD helpers shared by every kernel. The relaxed variant fuses multiply-add (one vfmadd on x86);
// the plain SIMD variant multiplies then adds.

/** a * b + c, lane-wise. */
// @ts-ignore: decorator
@inline export function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Sum of the four lanes, in a fixed order ((l0 + l2) + (l1 + l3)). */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}
