// SwiGLU of the Qwen2 MLP (docs/qwen2.md): m = silu(g) · u, silu(g) = g · σ(g), computed as torch does,
// silu = g / (1 + exp(−g)). Backward, with σ = σ(g):
//   dg = dm · u · σ · (1 + g · (1 − σ)),   du = dm · silu(g)
// Every output may alias any input of the same call with the same leading dimension (element-wise: each
// position is read before it is written), e.g. m over g, dg over g and du over u. dg and du must differ.

import { exp1, exp4 } from "./math";

/**
 * Rows [r0, r1), columns [0, n_cols) of m = silu(g) ⊙ u.
 *
 * m: [T, ld_m], g: [T, ld_g], u: [T, ld_u].
 */
export function swiglu_forward(m: usize, g: usize, u: usize, n_cols: i32, ld_m: i32, ld_g: i32, ld_u: i32,
                               r0: i32, r1: i32): void {
  const one = f32x4.splat(1.0);
  for (let t = r0; t < r1; t++) {
    const mr = m + ((<usize>t * ld_m) << 2), gr = g + ((<usize>t * ld_g) << 2), ur = u + ((<usize>t * ld_u) << 2);
    let j = 0;
    for (; j + 4 <= n_cols; j += 4) {
      const o = <usize>j << 2;
      const gv = v128.load(gr + o), uv = v128.load(ur + o);
      const silu = f32x4.div(gv, f32x4.add(one, exp4(f32x4.neg(gv))));
      v128.store(mr + o, f32x4.mul(silu, uv));
    }
    for (; j < n_cols; j++) {
      const o = <usize>j << 2;
      const gv = load<f32>(gr + o), uv = load<f32>(ur + o);
      store<f32>(mr + o, gv / (<f32>1.0 + exp1(-gv)) * uv);
    }
  }
}

/**
 * Rows [r0, r1), columns [0, n_cols) of the SwiGLU backward (see the file comment for aliasing).
 *
 * dg: [T, ld_dg], du: [T, ld_du], dm: [T, ld_dm], g: [T, ld_g], u: [T, ld_u].
 */
export function swiglu_backward(dg: usize, du: usize, dm: usize, g: usize, u: usize, n_cols: i32,
                                ld_dg: i32, ld_du: i32, ld_dm: i32, ld_g: i32, ld_u: i32,
                                r0: i32, r1: i32): void {
  const one = f32x4.splat(1.0);
  for (let t = r0; t < r1; t++) {
    const dgr = dg + ((<usize>t * ld_dg) << 2), dur = du + ((<usize>t * ld_du) << 2);
    const dmr = dm + ((<usize>t * ld_dm) << 2), gr = g + ((<usize>t * ld_g) << 2), ur = u + ((<usize>t * ld_u) << 2);
    let j = 0;
    for (; j + 4 <= n_cols; j += 4) {
      const o = <usize>j << 2;
      const gv = v128.load(gr + o), uv = v128.load(ur + o), dmv = v128.load(dmr + o);
      const sig = f32x4.div(one, f32x4.add(one, exp4(f32x4.neg(gv))));
      const silu = f32x4.mul(gv, sig);
      // dm · u · σ · (1 + g · (1 − σ))
      const d = f32x4.mul(f32x4.mul(f32x4.mul(dmv, uv), sig), f32x4.add(one, f32x4.mul(gv, f32x4.sub(one, sig))));
      v128.store(dgr + o, d);
      v128.store(dur + o, f32x4.mul(dmv, silu));
    }
    for (; j < n_cols; j++) {
      const o = <usize>j << 2;
      const gv = load<f32>(gr + o), uv = load<f32>(ur + o), dmv = load<f32>(dmr + o);
      const sig: f32 = <f32>1.0 / (<f32>1.0 + exp1(-gv));
      const silu = gv * sig;
      const d = dmv * uv * sig * (<f32>1.0 + gv * (<f32>1.0 - sig));
      store<f32>(dgr + o, d);
      store<f32>(dur + o, dmv * silu);
    }
  }
}
