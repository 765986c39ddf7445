// Causal softmax over attention scores, one row per query (docs/qwen2.md). Row i is the query at absolute
// position q_pos0 + i; key column j is visible iff j ≤ q_pos0 + i. As HF: z = scale · s, p = exp(z − max z)
// / Σ exp(z − max z) over the visible columns, in f32; masked columns are exactly 0.

import { hsum } from "./simd";
import { dot_f32 } from "./elementwise";
import { exp1, exp4 } from "./math";

// @ts-ignore: decorator
@inline function visible(n_cols: i32, q_pos0: i32, i: i32): i32 {
  const v = q_pos0 + i + 1;
  return v < 0 ? 0 : v > n_cols ? n_cols : v;
}

/**
 * Rows [r0, r1) of p = causal_softmax(scale · s). p may alias s (in place).
 *
 * p: [rows, ld] (first n_cols columns written), s: [rows, ld].
 */
export function softmax_causal_forward(p: usize, s: usize, n_cols: i32, ld: i32, scale: f32, q_pos0: i32,
                                       r0: i32, r1: i32): void {
  const vs = f32x4.splat(scale);
  for (let i = r0; i < r1; i++) {
    const sr = s + ((<usize>i * ld) << 2);
    const pr = p + ((<usize>i * ld) << 2);
    const nv = visible(n_cols, q_pos0, i);
    // z = scale · s into p, and its max
    let vm = f32x4.splat(-Infinity);
    let j = 0;
    for (; j + 4 <= nv; j += 4) {
      const o = <usize>j << 2;
      const z = f32x4.mul(v128.load(sr + o), vs);
      v128.store(pr + o, z);
      vm = f32x4.max(vm, z);
    }
    let m = max(max(f32x4.extract_lane(vm, 0), f32x4.extract_lane(vm, 1)),
                max(f32x4.extract_lane(vm, 2), f32x4.extract_lane(vm, 3)));
    for (; j < nv; j++) {
      const o = <usize>j << 2;
      const z = load<f32>(sr + o) * scale;
      store<f32>(pr + o, z);
      m = max(m, z);
    }
    // e = exp(z − m) and its sum
    const mv = f32x4.splat(m);
    let acc = f32x4.splat(0);
    j = 0;
    for (; j + 4 <= nv; j += 4) {
      const o = <usize>j << 2;
      const e = exp4(f32x4.sub(v128.load(pr + o), mv));
      v128.store(pr + o, e);
      acc = f32x4.add(acc, e);
    }
    let sum = hsum(acc);
    for (; j < nv; j++) {
      const o = <usize>j << 2;
      const e = exp1(load<f32>(pr + o) - m);
      store<f32>(pr + o, e);
      sum += e;
    }
    // normalise (a true division, as torch), zero the masked tail
    const sv = f32x4.splat(sum);
    j = 0;
    for (; j + 4 <= nv; j += 4) {
      const o = <usize>j << 2;
      v128.store(pr + o, f32x4.div(v128.load(pr + o), sv));
    }
    for (; j < nv; j++) {
      const o = <usize>j << 2;
      store<f32>(pr + o, load<f32>(pr + o) / sum);
    }
    if (nv < n_cols) memory.fill(pr + (<usize>nv << 2), 0, <usize>(n_cols - nv) << 2);
  }
}

/**
 * Rows [r0, r1) of ds = scale · p ⊙ (dp − Σ_j p ⊙ dp) over the visible columns; masked columns get 0. The
 * gradient is with respect to the raw scores s of softmax_causal_forward. ds may alias dp or p.
 *
 * ds: [rows, ld], p: [rows, ld] (from the forward), dp: [rows, ld].
 */
export function softmax_causal_backward(ds: usize, p: usize, dp: usize, n_cols: i32, ld: i32, scale: f32,
                                        q_pos0: i32, r0: i32, r1: i32): void {
  const vs = f32x4.splat(scale);
  for (let i = r0; i < r1; i++) {
    const row = (<usize>i * ld) << 2;
    const pr = p + row, gr = dp + row, dr = ds + row;
    const nv = visible(n_cols, q_pos0, i);
    const c = dot_f32(pr, gr, nv);
    const vc = f32x4.splat(c);
    let j = 0;
    for (; j + 4 <= nv; j += 4) {
      const o = <usize>j << 2;
      v128.store(dr + o, f32x4.mul(f32x4.mul(v128.load(pr + o), f32x4.sub(v128.load(gr + o), vc)), vs));
    }
    for (; j < nv; j++) {
      const o = <usize>j << 2;
      store<f32>(dr + o, load<f32>(pr + o) * (load<f32>(gr + o) - c) * scale);
    }
    if (nv < n_cols) memory.fill(dr + (<usize>nv << 2), 0, <usize>(n_cols - nv) << 2);
  }
}
