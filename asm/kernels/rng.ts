// Counter-based N(0, 1) numbers for MeZO (docs/mesp.md): z[i] is a pure function of (seed, i), so a
// perturbation is regenerated, never stored.
//
// Generator: Philox-4x32-10 (Salmon et al. 2011, Random123), key (seed, 0), counter (c, 0, 0, 0), gives four
// u32 words X0..X3. Two Box–Muller pairs turn them into four normals, in f32:
//   u  = ((X0 >> 8) + 1) · 2^-24 ∈ (0, 1],  R = sqrt(−2 · log u)
//   θ  = 2π · (X1 >> 8) · 2^-24, reduced exactly in integers to a quadrant q and φ ∈ [−π/4, π/4)
//   N0 = R · cos θ, N1 = R · sin θ; N2, N3 likewise from X2, X3.
// Index i maps to counter c = 4·(i >> 4) + (i & 3) and normal N_j, j = (i >> 2) & 3, so one SIMD pass over
// four counters yields sixteen consecutive indices. Only IEEE f32 add/mul/div/sqrt and integer ops are used
// (math.ts log4/sin/cos), so tests/_ref.ts `normalAt` reproduces every value bit for bit.
// |z| ≤ sqrt(2 · 24 · ln 2) ≈ 5.77. Indices are u32: offset + n ≤ 2^32.

import { cos4_small, log4, sin4_small } from "./math";

const M0: u32 = 0xd2511f53;
const M1: u32 = 0xcd9e8d57;
const W0: u32 = 0x9e3779b9;
const W1: u32 = 0xbb67ae85;

const MODE_FILL: i32 = 0;
const MODE_PERTURB: i32 = 1;
const MODE_UPDATE: i32 = 2;

// High 32 bits of the lane-wise u32 × u32 products.
// @ts-ignore: decorator
@inline function mulhi(a: v128, m: v128): v128 {
  return v128.shuffle<u32>(i64x2.extmul_low_i32x4_u(a, m), i64x2.extmul_high_i32x4_u(a, m), 1, 3, 5, 7);
}

/** z[offset + i] for i < n. out: [n]. */
export function normal_fill(out: usize, n: i32, seed: u32, offset: u32): void {
  normal_apply(MODE_FILL, out, n, seed, offset, 0, 0, 0);
}

/** MeZO perturbation p[i] += eps · z[offset + i] (multiply, then add). p: [n]. */
export function zo_perturb(p: usize, n: i32, seed: u32, offset: u32, eps: f32): void {
  normal_apply(MODE_PERTURB, p, n, seed, offset, eps, 0, 0);
}

/**
 * MeZO update p[i] −= lr · (coeff · z[offset + i] + weight_decay · p[i]), coeff = (L+ − L−) / (2ε).
 * p: [n].
 */
export function zo_update(p: usize, n: i32, seed: u32, offset: u32, coeff: f32, lr: f32, weight_decay: f32): void {
  normal_apply(MODE_UPDATE, p, n, seed, offset, coeff, lr, weight_decay);
}

// @ts-ignore: decorator
@inline function apply1(mode: i32, p: usize, z: f32, a: f32, b: f32, c: f32): void {
  if (mode == MODE_FILL) store<f32>(p, z);
  else if (mode == MODE_PERTURB) store<f32>(p, load<f32>(p) + a * z);
  else {
    const pv = load<f32>(p);
    store<f32>(p, pv - b * (a * z + c * pv));
  }
}

// @ts-ignore: decorator
@inline function apply4(mode: i32, p: usize, z: v128, a: f32, b: f32, c: f32): void {
  if (mode == MODE_FILL) v128.store(p, z);
  else if (mode == MODE_PERTURB) v128.store(p, f32x4.add(v128.load(p), f32x4.mul(f32x4.splat(a), z)));
  else {
    const pv = v128.load(p);
    const t = f32x4.add(f32x4.mul(f32x4.splat(a), z), f32x4.mul(f32x4.splat(c), pv));
    v128.store(p, f32x4.sub(pv, f32x4.mul(f32x4.splat(b), t)));
  }
}

// @ts-ignore: decorator
@inline function lane(v: v128, l: i32): f32 {
  if (l == 0) return f32x4.extract_lane(v, 0);
  if (l == 1) return f32x4.extract_lane(v, 1);
  if (l == 2) return f32x4.extract_lane(v, 2);
  return f32x4.extract_lane(v, 3);
}

function normal_apply(mode: i32, p: usize, n: i32, seed: u32, offset: u32, a: f32, b: f32, c: f32): void {
  if (n <= 0) return;
  const start = <u64>offset, end = <u64>offset + <u64>n; // u64: offset + n may reach 2^32
  const first = <u32>(start >> 4), last = <u32>((end - 1) >> 4);
  for (let blk = first; blk <= last; blk++) {
    // Philox-4x32-10 on counters 4·blk + (0, 1, 2, 3)
    let c0 = i32x4.add(i32x4.splat(blk << 2), i32x4(0, 1, 2, 3));
    let c1 = i32x4.splat(0), c2 = i32x4.splat(0), c3 = i32x4.splat(0);
    let k0 = i32x4.splat(seed), k1 = i32x4.splat(0);
    const m0 = i32x4.splat(M0), m1 = i32x4.splat(M1);
    for (let r = 0; r < 10; r++) {
      const hi0 = mulhi(c0, m0), lo0 = i32x4.mul(c0, m0);
      const hi1 = mulhi(c2, m1), lo1 = i32x4.mul(c2, m1);
      c0 = v128.xor(v128.xor(hi1, c1), k0);
      c1 = lo1;
      c2 = v128.xor(v128.xor(hi0, c3), k1);
      c3 = lo0;
      k0 = i32x4.add(k0, i32x4.splat(W0));
      k1 = i32x4.add(k1, i32x4.splat(W1));
    }
    // Box–Muller on (X0, X1) → z0, z1 and on (X2, X3) → z2, z3
    const ra = radius(c0), pa = angle(c1), qa = quadrant(c1);
    const sa = sin4_small(pa), ca = cos4_small(pa);
    const z0 = bm_cos(ra, sa, ca, qa), z1 = bm_sin(ra, sa, ca, qa);
    const rb = radius(c2), pb = angle(c3), qb = quadrant(c3);
    const sb = sin4_small(pb), cb = cos4_small(pb);
    const z2 = bm_cos(rb, sb, cb, qb), z3 = bm_sin(rb, sb, cb, qb);
    const base = <u64>blk << 4;
    if (base >= start && base + 16 <= end) {
      const q = p + (<usize>(base - start) << 2);
      apply4(mode, q, z0, a, b, c);
      apply4(mode, q + 16, z1, a, b, c);
      apply4(mode, q + 32, z2, a, b, c);
      apply4(mode, q + 48, z3, a, b, c);
    } else {
      const i0 = max(base, start), i1 = min(base + 16, end);
      for (let i = i0; i < i1; i++) {
        const k = <i32>(i - base);
        const v = k < 4 ? z0 : k < 8 ? z1 : k < 12 ? z2 : z3;
        apply1(mode, p + (<usize>(i - start) << 2), lane(v, k & 3), a, b, c);
      }
    }
  }
}

// R = sqrt(−2 log u), u = ((X >> 8) + 1) · 2^-24 ∈ (0, 1].
// @ts-ignore: decorator
@inline function radius(x: v128): v128 {
  const u = f32x4.mul(f32x4.convert_i32x4_s(i32x4.add(i32x4.shr_u(x, 8), i32x4.splat(1))),
                      f32x4.splat(5.9604644775390625e-8)); // 2^-24
  return f32x4.sqrt(f32x4.mul(log4(u), f32x4.splat(-2.0)));
}

// θ = 2π·w/2^24, w = X >> 8. Adding 2^21 centres each quadrant: θ = q·π/2 + φ, φ ∈ [−π/4, π/4), exactly.
// @ts-ignore: decorator
@inline function quadrant(x: v128): v128 {
  return v128.and(i32x4.shr_u(i32x4.add(i32x4.shr_u(x, 8), i32x4.splat(1 << 21)), 22), i32x4.splat(3));
}

// @ts-ignore: decorator
@inline function angle(x: v128): v128 {
  const w = i32x4.add(i32x4.shr_u(x, 8), i32x4.splat(1 << 21));
  const r = i32x4.sub(v128.and(w, i32x4.splat((1 << 22) - 1)), i32x4.splat(1 << 21));
  return f32x4.mul(f32x4.convert_i32x4_s(r), f32x4.splat(3.7450702829239286e-7)); // 2π / 2^24
}

// R · cos θ: cos θ = c, −s, −c, s for q = 0..3 (sign flips by xor of the sign bit).
// @ts-ignore: decorator
@inline function bm_cos(r: v128, s: v128, c: v128, q: v128): v128 {
  const odd = i32x4.eq(v128.and(q, i32x4.splat(1)), i32x4.splat(1));
  const sign = i32x4.shl(v128.and(i32x4.add(q, i32x4.splat(1)), i32x4.splat(2)), 30);
  return f32x4.mul(r, v128.xor(v128.bitselect(s, c, odd), sign));
}

// R · sin θ: sin θ = s, c, −s, −c for q = 0..3.
// @ts-ignore: decorator
@inline function bm_sin(r: v128, s: v128, c: v128, q: v128): v128 {
  const odd = i32x4.eq(v128.and(q, i32x4.splat(1)), i32x4.splat(1));
  const sign = i32x4.shl(v128.and(q, i32x4.splat(2)), 30);
  return f32x4.mul(r, v128.xor(v128.bitselect(c, s, odd), sign));
}
