/**
 * The next-token loss over the LM head, streamed one vocabulary chunk at a time with an online
 * log-sum-exp, and beside it the fused backward training uses: the loss and dL/d(final hidden) in the same
 * single pass over the vocabulary (docs/mesp.md).
 *
 * ```
 * loss_t = lse_t − z_t[target_t]          lse_t = log Σ_v exp z_t[v],  z_t = xn_t · Eᵀ
 * dxn_t  = w_t · (softmax(z_t) · E − E[target_t])      w_t = 1 / (trained rows), 0 for untrained rows
 * ```
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import type { LossRows } from "./blocks.ts";
import { dtypeCode } from "../runtime/weight_ref.ts";
import { OP } from "../runtime/kernels.ts";

/** The loss rows of `e`'s only sequence (slot 0 of its batch; resolved once per engine). */
export function lossRows(e: Engine): LossRows {
  return e.blocks.batch[0].loss;
}

const targetViews = new WeakMap<Engine, Int32Array>();

/** The loss's target ids as an array (a view made once per engine: the step loop allocates nothing). */
function lossTargets(e: Engine): Int32Array {
  let v = targetViews.get(e);
  if (!v) {
    const at = e.p["loss.targets"] >>> 2;
    targetViews.set(e, v = e.I32.subarray(at, at + e.D.T));
  }
  return v;
}

/**
 * Sets the loss targets for a sequence (into `r`, by default the engine's only sequence's): row t predicts
 * ids[t+1] where targets[t+1] is set. The number of rows with a target.
 */
export function setTargets(
  e: Engine,
  ids: ArrayLike<number>,
  trained: ArrayLike<number> | undefined,
  T: number,
  r: LossRows = lossRows(e),
): number {
  let n = 0;
  for (let t = 0; t < T; t++) {
    const ok = t + 1 < T && (trained ? trained[t + 1] !== 0 : true);
    e.I32[(r.targets >>> 2) + t] = ok ? ids[t + 1] : -1;
    if (ok) n++;
  }
  for (let t = 0; t < T; t++) {
    e.F[(r.weight >>> 2) + t] = e.I32[(r.targets >>> 2) + t] >= 0 && n ? 1 / n : 0;
  }
  return n;
}

/** Σ and count of the per-row losses of trained rows (of `r`), in f64 (for means over many sequences). */
export function lossSum(e: Engine, T: number, r: LossRows = lossRows(e)): { sum: number; count: number } {
  let sum = 0, count = 0;
  for (let t = 0; t < T; t++) {
    if (e.I32[(r.targets >>> 2) + t] < 0) continue;
    sum += e.F[(r.loss >>> 2) + t];
    count++;
  }
  return { sum, count };
}

/**
 * The first row with a target: the LM head runs on rows from here to {@linkcode trainedTo} only (a chat
 * example's masked prompt costs nothing there; docs/mesp.md, "The loss").
 */
function trainedFrom(e: Engine, r: LossRows, T: number): number {
  const at = r.targets >>> 2;
  let t = 0;
  while (t < T && e.I32[at + t] < 0) t++;
  return t;
}

/** One past the last row with a target (see {@linkcode trainedFrom}). */
function trainedTo(e: Engine, r: LossRows, T: number): number {
  const at = r.targets >>> 2;
  let t = T;
  while (t > 0 && e.I32[at + t - 1] < 0) t--;
  return t;
}

/**
 * logits[row0:row1, 0:vc) = xn · E[v0:v0+vc)ᵀ for the chunk in the slot (ld = Vc; `xn` by default `act.xn`);
 * the logits' pointer.
 */
export function chunkLogits(e: Engine, row0: number, row1: number, vc: number, xn = e.p["act.xn"]): number {
  const logits = e.p["loss.logits"], { d, Vc } = e.D;
  e.gemm.run(OP.nt, row0, row1, 0, vc, vc, d, xn, d, e.weights.vocabRef, logits, Vc, 1, false);
  return logits;
}

/**
 * Per-row next-token loss of rows [0, T) (targets in `loss.targets`, i32; −1 for rows without a target):
 * streams the LM head chunk by chunk with an online log-sum-exp. Leaves −log p(target) per row in
 * `loss.rows.loss` and log Σ exp in `.lse` (with `.max`).
 */
export async function lossForward(e: Engine, T: number): Promise<void> {
  await lossForwardSlots(e, 1, T, undefined);
}

/**
 * {@linkcode lossForward} of the first `n` sequences of the batch, slot s with `lengths[s]` rows, in one
 * pass over the vocabulary: each chunk is read once for all of them.
 */
export async function lossForwardBatch(e: Engine, n: number, lengths: ArrayLike<number>): Promise<void> {
  await lossForwardSlots(e, n, 0, lengths);
}

/** The loss pass of slots 0…n−1, each `lengths[s]` rows (every one `T` when no lengths are given). */
async function lossForwardSlots(
  e: Engine,
  n: number,
  T: number,
  lengths: ArrayLike<number> | undefined,
): Promise<void> {
  const { Vc } = e.D, slots = e.blocks.batch;
  let any = false;
  for (let s = 0; s < n && !any; s++) {
    const r = slots[s].loss, Ts = lengths ? lengths[s] : T;
    any = trainedFrom(e, r, Ts) < trainedTo(e, r, Ts);
  }
  if (!any) return;
  for (let c = 0; c < e.weights.vocabChunks; c++) {
    const vc = await e.weights.loadVocabChunk(c);
    for (let s = 0; s < n; s++) {
      const r = slots[s].loss, Ts = lengths ? lengths[s] : T;
      const lo = trainedFrom(e, r, Ts), hi = trainedTo(e, r, Ts);
      if (lo >= hi) continue;
      const logits = chunkLogits(e, lo, hi, vc, slots[s].xn);
      e.k.ce_chunk_forward(
        logits,
        vc,
        Vc,
        c * Vc,
        r.targets,
        r.max,
        r.sum,
        r.tlogit,
        c === 0 ? 1 : 0,
        lo,
        hi,
      );
    }
  }
  for (let s = 0; s < n; s++) {
    const r = slots[s].loss, Ts = lengths ? lengths[s] : T;
    const lo = trainedFrom(e, r, Ts), hi = trainedTo(e, r, Ts);
    if (lo < hi) e.k.ce_finish(r.loss, r.lse, r.max, r.sum, r.tlogit, lo, hi);
  }
}

/**
 * The loss and dL/d(final hidden) in one pass over the vocabulary (training): each chunk's logits are
 * computed once; an online log-sum-exp keeps the running max m and sum, and `grad.xn` accumulates
 * Σ exp(x − m)·E_chunk, rescaled whenever m grows. At the end `grad.xn` = w·(softmax·E − E[target]) per row
 * and goes back through the final RMSNorm into `grad.x`. Leaves the per-row losses like `lossForward`.
 */
export async function lossForwardBackward(e: Engine, T: number): Promise<void> {
  const { d, Vc } = e.D, p = e.p;
  const r = lossRows(e), dxn = p["grad.xn"], lo = trainedFrom(e, r, T), hi = trainedTo(e, r, T);
  // rows without a target have no gradient: zero, as their weight 0 made them before
  e.F.fill(0, dxn >>> 2, (dxn >>> 2) + lo * d);
  e.F.fill(0, (dxn >>> 2) + hi * d, (dxn >>> 2) + T * d);
  // an untied head's target rows are kept as this pass reads them, for the gather after it
  e.weights.expectRows(lossTargets(e), T, true);
  for (let c = 0; c < e.weights.vocabChunks; c++) {
    const vc = await e.weights.loadVocabChunk(c);
    const logits = chunkLogits(e, lo, hi, vc);
    const first = c === 0 ? 1 : 0;
    e.k.ce_chunk_fused(
      logits,
      vc,
      Vc,
      c * Vc,
      r.targets,
      r.max,
      r.sum,
      r.tlogit,
      r.weight,
      dxn,
      d,
      d,
      first,
      lo,
      hi,
    );
    // acc += p · E_chunk
    e.gemm.run(OP.nn, lo, hi, 0, d, d, vc, logits, Vc, e.weights.vocabRef, dxn, d, 1, c > 0);
  }
  e.k.ce_fused_finish(r.loss, r.lse, r.max, r.sum, r.tlogit, r.weight, dxn, d, d, lo, hi);
  const erow = p["loss.erow"];
  // the target rows in few reads (tied: the embedding's, gathered already by the forward)
  await e.weights.prefetchRows(lossTargets(e), T, true);
  for (let t = 0; t < T; t++) {
    const w = e.F[(r.weight >>> 2) + t];
    if (w === 0) continue;
    const id = e.I32[(r.targets >>> 2) + t];
    const ref = e.weights.gatheredRow(id, true) ?? await e.weights.readRow(id, true);
    e.k.decode_row(dtypeCode(ref), ref.ptr, d, ref.scales, ref.biases, 0, 0, d, erow);
    e.k.axpy(dxn + t * d * 4, -w, erow, d); // − w · E[target]
  }
  e.k.rmsnorm_backward(p["grad.x"], dxn, p["act.x"], p["weights.norm"], p["act.rstd"], d, d, d, d, 0, 0, T);
}
