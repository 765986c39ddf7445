// Optimizer steps on flat f32 parameter arrays, following torch.optim (1.13, single-tensor path). Scalars
// arrive as f64 and are combined in f64 the way torch's Python code does before they reach the f32 kernel.
// Plain multiply and add (no fma), in torch's operation order, so both variants give the same bits.

/**
 * SGD with L2 weight decay (torch.optim.SGD, no momentum): p −= lr · (g + weight_decay · p).
 *
 * p: [n], g: [n].
 */
export function sgd_update(p: usize, g: usize, n: i32, lr: f64, weight_decay: f64): void {
  const wd = <f32>weight_decay, nlr = <f32>-lr;
  const vwd = f32x4.splat(wd), vnlr = f32x4.splat(nlr);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const pv = v128.load(p + o);
    const d = f32x4.add(v128.load(g + o), f32x4.mul(vwd, pv));
    v128.store(p + o, f32x4.add(pv, f32x4.mul(vnlr, d)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const pv = load<f32>(p + o);
    const d = load<f32>(g + o) + wd * pv;
    store<f32>(p + o, pv + nlr * d);
  }
}

/**
 * AdamW (torch.optim.AdamW): p ·= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + ((1−β2)·g)·g;
 * p += (−lr/bias_c1 · m) / (sqrt(v)/sqrt(bias_c2) + eps), with bias_c1 = 1 − β1^t, bias_c2 = 1 − β2^t
 * for step t ≥ 1.
 *
 * p: [n], g: [n], m: [n] (first moment), v: [n] (second moment).
 */
export function adamw_update(p: usize, g: usize, m: usize, v: usize, n: i32, lr: f64, beta1: f64, beta2: f64,
                             eps: f64, weight_decay: f64, bias_c1: f64, bias_c2: f64): void {
  const decay = <f32>(1.0 - lr * weight_decay);
  const b1 = <f32>beta1, c1 = <f32>(1.0 - beta1), b2 = <f32>beta2, c2 = <f32>(1.0 - beta2);
  const nstep = <f32>-(lr / bias_c1), bc2 = <f32>Math.sqrt(bias_c2), e = <f32>eps;
  const vdecay = f32x4.splat(decay), vb1 = f32x4.splat(b1), vc1 = f32x4.splat(c1);
  const vb2 = f32x4.splat(b2), vc2 = f32x4.splat(c2), vstep = f32x4.splat(nstep);
  const vbc2 = f32x4.splat(bc2), ve = f32x4.splat(e);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const gv = v128.load(g + o);
    const pv = f32x4.mul(v128.load(p + o), vdecay);
    const mv = f32x4.add(f32x4.mul(v128.load(m + o), vb1), f32x4.mul(vc1, gv));
    const vv = f32x4.add(f32x4.mul(v128.load(v + o), vb2), f32x4.mul(f32x4.mul(vc2, gv), gv));
    const den = f32x4.add(f32x4.div(f32x4.sqrt(vv), vbc2), ve);
    v128.store(m + o, mv);
    v128.store(v + o, vv);
    v128.store(p + o, f32x4.add(pv, f32x4.div(f32x4.mul(vstep, mv), den)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const gv = load<f32>(g + o);
    const pv = load<f32>(p + o) * decay;
    const mv = load<f32>(m + o) * b1 + c1 * gv;
    const vv = load<f32>(v + o) * b2 + c2 * gv * gv;
    const den = sqrt<f32>(vv) / bc2 + e;
    store<f32>(m + o, mv);
    store<f32>(v + o, vv);
    store<f32>(p + o, pv + nstep * mv / den);
  }
}
