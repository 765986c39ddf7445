// Rotary position embedding, NeoX / rotate_half convention (docs/qwen2.md). For each head and i < half:
//   out[i]        = x[i] · cos − x[i + half] · sin
//   out[i + half] = x[i + half] · cos + x[i] · sin
// with cos/sin of angle (pos0 + t) · θ_i read from host-filled tables [max_pos, head_dim/2]. Plain multiply
// and subtract/add, in HF's order. The backward is the inverse (transposed) rotation.

/**
 * Rotates rows [r0, r1) of x in place: n_heads heads of head_dim (even) values each, from column 0. Row t uses
 * table row pos0 + t.
 *
 * x: [T, ld], cos: [max_pos, head_dim/2], sin: [max_pos, head_dim/2].
 */
export function rope_forward(x: usize, cos: usize, sin: usize, n_heads: i32, head_dim: i32, ld: i32,
                             pos0: i32, r0: i32, r1: i32): void {
  rope(x, cos, sin, n_heads, head_dim, ld, pos0, r0, r1, false);
}

/**
 * Backward of rope_forward, in place on the gradient: dx = Rᵀ · dout (rotation by the negative angle).
 *
 * dx: [T, ld] (holds dout on entry), cos: [max_pos, head_dim/2], sin: [max_pos, head_dim/2].
 */
export function rope_backward(dx: usize, cos: usize, sin: usize, n_heads: i32, head_dim: i32, ld: i32,
                              pos0: i32, r0: i32, r1: i32): void {
  rope(dx, cos, sin, n_heads, head_dim, ld, pos0, r0, r1, true);
}

// @ts-ignore: decorator
@inline function rope(x: usize, cos: usize, sin: usize, n_heads: i32, head_dim: i32, ld: i32,
                      pos0: i32, r0: i32, r1: i32, inverse: bool): void {
  const half = head_dim >> 1;
  const hb = <usize>half << 2;
  for (let t = r0; t < r1; t++) {
    const cr = cos + <usize>(pos0 + t) * hb;
    const sr = sin + <usize>(pos0 + t) * hb;
    for (let h = 0; h < n_heads; h++) {
      const xa = x + ((<usize>t * ld + <usize>h * head_dim) << 2);
      const xb = xa + hb;
      let i = 0;
      for (; i + 4 <= half; i += 4) {
        const o = <usize>i << 2;
        const a = v128.load(xa + o), b = v128.load(xb + o);
        const c = v128.load(cr + o), s = v128.load(sr + o);
        if (inverse) {
          v128.store(xa + o, f32x4.add(f32x4.mul(a, c), f32x4.mul(b, s)));
          v128.store(xb + o, f32x4.sub(f32x4.mul(b, c), f32x4.mul(a, s)));
        } else {
          v128.store(xa + o, f32x4.sub(f32x4.mul(a, c), f32x4.mul(b, s)));
          v128.store(xb + o, f32x4.add(f32x4.mul(b, c), f32x4.mul(a, s)));
        }
      }
      for (; i < half; i++) {
        const o = <usize>i << 2;
        const a = load<f32>(xa + o), b = load<f32>(xb + o);
        const c = load<f32>(cr + o), s = load<f32>(sr + o);
        if (inverse) {
          store<f32>(xa + o, a * c + b * s);
          store<f32>(xb + o, b * c - a * s);
        } else {
          store<f32>(xa + o, a * c - b * s);
          store<f32>(xb + o, b * c + a * s);
        }
      }
    }
  }
}
