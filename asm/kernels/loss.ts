// Cross-entropy over vocabulary chunks (docs/mesp.md, "The loss"): the [T, V] logits never exist. For each
// chunk of columns [v0, v0 + vc) the host computes logits = h · E_chunkᵀ and calls
//   evaluation: ce_chunk_forward (online log-sum-exp: running max and rescaled sum per row, and the target's
//               logit when it falls in the chunk), then once ce_finish;
//   training:   ce_chunk_fused, the same update plus p = exp(x − m) written over the logits and the gradient
//               accumulator rescaled whenever a row's max grows; the host adds p · E_chunk into it, and after
//               the last chunk ce_fused_finish gives the loss and w · softmax · E (the host subtracts
//               w · E[target]). One pass over the vocabulary: each chunk's logits are computed once.
// As torch's log_softmax: log p_j = (x_j − max) − log Σ exp(x − max), loss = log Σ − (x_target − max).

import { hsum } from "./simd";
import { exp1, exp4, log1 } from "./math";

/**
 * Folds one vocabulary chunk into the running max / sum of rows [r0, r1). With first != 0 the running values
 * are initialised from this chunk (and target_logit set to 0 unless the target is in it). Rows whose target
 * is outside every chunk (e.g. −100, not trained) keep target_logit 0.
 *
 * logits: [T, ld] (vc columns used), targets: i32 [T], row_max: [T], row_sum: [T], target_logit: [T].
 */
export function ce_chunk_forward(logits: usize, vc: i32, ld: i32, v0: i32, targets: usize,
                                 row_max: usize, row_sum: usize, target_logit: usize, first: i32,
                                 r0: i32, r1: i32): void {
  for (let t = r0; t < r1; t++) {
    const lr = logits + ((<usize>t * ld) << 2);
    const to = <usize>t << 2;
    let vm = f32x4.splat(-Infinity);
    let j = 0;
    for (; j + 4 <= vc; j += 4) vm = f32x4.max(vm, v128.load(lr + (<usize>j << 2)));
    let cm = max(max(f32x4.extract_lane(vm, 0), f32x4.extract_lane(vm, 1)),
                 max(f32x4.extract_lane(vm, 2), f32x4.extract_lane(vm, 3)));
    for (; j < vc; j++) cm = max(cm, load<f32>(lr + (<usize>j << 2)));
    let m: f32, s: f32;
    if (first) {
      m = cm;
      s = 0;
    } else {
      const om = load<f32>(row_max + to);
      m = max(om, cm);
      s = load<f32>(row_sum + to) * exp1(om - m);
    }
    if (vc > 0) {
      const mv = f32x4.splat(m);
      let acc = f32x4.splat(0);
      j = 0;
      for (; j + 4 <= vc; j += 4) acc = f32x4.add(acc, exp4(f32x4.sub(v128.load(lr + (<usize>j << 2)), mv)));
      let cs = hsum(acc);
      for (; j < vc; j++) cs += exp1(load<f32>(lr + (<usize>j << 2)) - m);
      s += cs;
    }
    store<f32>(row_max + to, m);
    store<f32>(row_sum + to, s);
    const tgt = load<i32>(targets + to);
    if (tgt >= v0 && tgt < v0 + vc) store<f32>(target_logit + to, load<f32>(lr + (<usize>(tgt - v0) << 2)));
    else if (first) store<f32>(target_logit + to, 0);
  }
}

/**
 * After the last chunk: logsum = log(row_sum) and loss = logsum − (target_logit − row_max) per row (the
 * unweighted −log p_target; the host averages over trained rows). logsum may alias row_sum, loss may alias
 * target_logit.
 *
 * loss: [T], logsum: [T], row_max: [T], row_sum: [T], target_logit: [T].
 */
export function ce_finish(loss: usize, logsum: usize, row_max: usize, row_sum: usize, target_logit: usize,
                          r0: i32, r1: i32): void {
  for (let t = r0; t < r1; t++) {
    const to = <usize>t << 2;
    const ls = log1(load<f32>(row_sum + to));
    const d = load<f32>(target_logit + to) - load<f32>(row_max + to);
    store<f32>(logsum + to, ls);
    store<f32>(loss + to, ls - d);
  }
}

/**
 * One pass of the loss and its gradient together (training): for chunk [v0, v0 + vc) of rows [r0, r1), the
 * same online log-sum-exp update as ce_chunk_forward (bitwise the same running max, sum and target logit),
 * and then the logits are replaced by p = exp(x − m) against the new running max m, and row t of the
 * gradient accumulator `acc` is rescaled by exp(m_old − m) so that after the host adds p · E_chunk to it,
 * acc = Σ_chunks exp(x − m) · E over the chunks so far. Rows with row_weight 0 get p = 0 and keep acc.
 * After the last chunk, ce_fused_finish turns acc into row_weight · softmax · E (the host then subtracts
 * row_weight · E[target]).
 *
 * logits: [T, ld] (overwritten by p), targets: i32 [T], row_max, row_sum, target_logit, row_weight: [T],
 * acc: [T, ld_acc] (first d columns).
 */
export function ce_chunk_fused(logits: usize, vc: i32, ld: i32, v0: i32, targets: usize,
                               row_max: usize, row_sum: usize, target_logit: usize, row_weight: usize,
                               acc: usize, ld_acc: i32, d: i32, first: i32, r0: i32, r1: i32): void {
  for (let t = r0; t < r1; t++) {
    const lr = logits + ((<usize>t * ld) << 2);
    const to = <usize>t << 2;
    const om = first ? <f32>-Infinity : load<f32>(row_max + to);
    ce_chunk_forward(logits, vc, ld, v0, targets, row_max, row_sum, target_logit, first, t, t + 1);
    const m = load<f32>(row_max + to);
    if (load<f32>(row_weight + to) == 0) {
      if (vc > 0) memory.fill(lr, 0, <usize>vc << 2);
      continue;
    }
    const mv = f32x4.splat(m);
    let j = 0;
    for (; j + 4 <= vc; j += 4) {
      const o = <usize>j << 2;
      v128.store(lr + o, exp4(f32x4.sub(v128.load(lr + o), mv)));
    }
    for (; j < vc; j++) store<f32>(lr + (<usize>j << 2), exp1(load<f32>(lr + (<usize>j << 2)) - m));
    if (!first && om != m) scale_row(acc + ((<usize>t * ld_acc) << 2), exp1(om - m), d);
  }
}

/**
 * After the last fused chunk: the loss as ce_finish, and acc[t] = row_weight · acc[t] / row_sum (the softmax
 * part of the gradient through the LM head); rows with weight 0 are zeroed.
 */
export function ce_fused_finish(loss: usize, logsum: usize, row_max: usize, row_sum: usize, target_logit: usize,
                                row_weight: usize, acc: usize, ld_acc: i32, d: i32, r0: i32, r1: i32): void {
  for (let t = r0; t < r1; t++) {
    const to = <usize>t << 2;
    const w = load<f32>(row_weight + to);
    const row = acc + ((<usize>t * ld_acc) << 2);
    if (w == 0) memory.fill(row, 0, <usize>d << 2);
    else scale_row(row, w / load<f32>(row_sum + to), d);
  }
  ce_finish(loss, logsum, row_max, row_sum, target_logit, r0, r1);
}

// @ts-ignore: decorator
@inline function scale_row(row: usize, f: f32, d: i32): void {
  const fv = f32x4.splat(f);
  let i = 0;
  for (; i + 4 <= d; i += 4) v128.store(row + (<usize>i << 2), f32x4.mul(v128.load(row + (<usize>i << 2)), fv));
  for (; i < d; i++) store<f32>(row + (<usize>i << 2), load<f32>(row + (<usize>i << 2)) * f);
}
