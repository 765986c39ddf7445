// RMSNorm (Qwen2RMSNorm, docs/qwen2.md), all in f32 as HF does for f32 activations:
//   rstd = 1 / sqrt(Σ x² / d + eps),  y = (x · rstd) · w
// Backward from the stored rstd, x̂ = x · rstd, g = w ⊙ dy:
//   dx = rstd · (g − x̂ · mean(x̂ ⊙ g))

import { fma, hsum } from "./simd";
import { dot_f32 } from "./elementwise";

/**
 * Rows [r0, r1) of y = rmsnorm(x) · w; stores rstd per row. y may alias x when ld_y == ld_x.
 *
 * y: [T, ld_y] (first d columns written), rstd: [T], x: [T, ld_x], w: [d].
 */
export function rmsnorm_forward(y: usize, rstd: usize, x: usize, w: usize,
                                d: i32, ld_x: i32, ld_y: i32, eps: f32, r0: i32, r1: i32): void {
  for (let t = r0; t < r1; t++) {
    const xr = x + ((<usize>t * ld_x) << 2);
    const yr = y + ((<usize>t * ld_y) << 2);
    const r: f32 = <f32>1.0 / sqrt<f32>(dot_f32(xr, xr, d) / <f32>d + eps);
    store<f32>(rstd + (<usize>t << 2), r);
    const vr = f32x4.splat(r);
    let i = 0;
    for (; i + 4 <= d; i += 4) {
      const o = <usize>i << 2;
      v128.store(yr + o, f32x4.mul(f32x4.mul(v128.load(xr + o), vr), v128.load(w + o)));
    }
    for (; i < d; i++) {
      const o = <usize>i << 2;
      store<f32>(yr + o, load<f32>(xr + o) * r * load<f32>(w + o));
    }
  }
}

/**
 * Rows [r0, r1) of dx (+)= rstd · (w⊙dy − x̂ · mean(x̂ ⊙ w⊙dy)), x̂ = x · rstd. With accumulate != 0 the
 * result is added to dx (the residual gradient already there); otherwise dx may alias dy (same ld).
 *
 * dx: [T, ld_dx], dy: [T, ld_dy], x: [T, ld_x], w: [d], rstd: [T] (from rmsnorm_forward).
 */
export function rmsnorm_backward(dx: usize, dy: usize, x: usize, w: usize, rstd: usize,
                                 d: i32, ld_dx: i32, ld_dy: i32, ld_x: i32, accumulate: i32,
                                 r0: i32, r1: i32): void {
  for (let t = r0; t < r1; t++) {
    const xr = x + ((<usize>t * ld_x) << 2);
    const gr = dy + ((<usize>t * ld_dy) << 2);
    const dr = dx + ((<usize>t * ld_dx) << 2);
    const r = load<f32>(rstd + (<usize>t << 2));
    // Σ x·(w·dy), same blocking as dot_f32
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
    let i = 0;
    for (; i + 8 <= d; i += 8) {
      const o = <usize>i << 2;
      s0 = fma(v128.load(xr + o), f32x4.mul(v128.load(w + o), v128.load(gr + o)), s0);
      s1 = fma(v128.load(xr + o, 16), f32x4.mul(v128.load(w + o, 16), v128.load(gr + o, 16)), s1);
    }
    if (i + 4 <= d) {
      const o = <usize>i << 2;
      s0 = fma(v128.load(xr + o), f32x4.mul(v128.load(w + o), v128.load(gr + o)), s0);
      i += 4;
    }
    let s = hsum(f32x4.add(s0, s1));
    for (; i < d; i++) {
      const o = <usize>i << 2;
      s += load<f32>(xr + o) * (load<f32>(w + o) * load<f32>(gr + o));
    }
    const c: f32 = r * s / <f32>d; // mean(x̂ ⊙ g)
    const vr = f32x4.splat(r), vc = f32x4.splat(c);
    i = 0;
    for (; i + 4 <= d; i += 4) {
      const o = <usize>i << 2;
      const g = f32x4.mul(v128.load(w + o), v128.load(gr + o));
      const xh = f32x4.mul(v128.load(xr + o), vr);
      let v = f32x4.mul(vr, f32x4.sub(g, f32x4.mul(xh, vc)));
      if (accumulate) v = f32x4.add(v128.load(dr + o), v);
      v128.store(dr + o, v);
    }
    for (; i < d; i++) {
      const o = <usize>i << 2;
      const g = load<f32>(w + o) * load<f32>(gr + o);
      const xh = load<f32>(xr + o) * r;
      let v = r * (g - xh * c);
      if (accumulate) v = load<f32>(dr + o) + v;
      store<f32>(dr + o, v);
    }
  }
}
