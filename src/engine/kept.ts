/**
 * What a layer keeps from the training forward for its backward under a budget schedule (`schedule.ts`):
 * the last `keep.mlp` layers their MLP's gate and up projections (`keep.mlp`, `[2, T, I]` a layer), the last
 * `keep.attention` layers their attention tensors (`keep.attn`: xn, q, k, v, attention output, the MLP's
 * input x2, 1/rms). The forward writes them where the working buffers would have been; the backward reads
 * them instead of recomputing. Same kernels, same operands: the gradients are bitwise MeSP's.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import { keptFloats } from "./plan.ts";
import {
  type AttentionBuffers,
  attentionForward,
  type KeyValues,
  type MlpBuffers,
  mlpForward,
  workingAttention,
  workingMlp,
} from "./forward.ts";

/** A layer's kept attention tensors. */
export interface KeptAttention {
  kv: KeyValues;
  buffers: AttentionBuffers;
  /** The MLP block's input (the residual after attention) `[T, d]`. */
  x2: number;
}

/** The slot of layer `l` among the last `n` layers, or −1 when it is not one of them. */
function slotOf(e: Engine, l: number, n: number): number {
  return l >= e.D.L - n ? l - (e.D.L - n) : -1;
}

/** Layer `l`'s kept attention tensors, or undefined when the schedule does not keep them. */
export function keptAttention(e: Engine, l: number): KeptAttention | undefined {
  const s = slotOf(e, l, e.options.keep?.attention ?? 0);
  if (s < 0) return undefined;
  const { T, d, qd, kvd } = e.D, f = 4;
  const base = e.p["keep.attn"] + s * keptFloats(e.D).attention * f;
  const xn = base, q = xn + T * d * f, k = q + T * qd * f, v = k + T * kvd * f;
  const att = v + T * kvd * f, x2 = att + T * qd * f, rstd = x2 + T * d * f;
  return { kv: { k, v }, buffers: { ...workingAttention(e), xn, rstd, q, att }, x2 };
}

/**
 * Layer `l`'s MLP buffers with its kept gate and up projections, or undefined when the schedule does not
 * keep them. The SwiGLU output goes to the `mlp.m` chunk buffer (g must survive).
 */
export function keptMlp(e: Engine, l: number): MlpBuffers | undefined {
  const s = slotOf(e, l, e.options.keep?.mlp ?? 0);
  if (s < 0) return undefined;
  const { T, I, C } = e.D, p = e.p;
  const g = p["keep.mlp"] + s * keptFloats(e.D).mlp * 4, u = g + T * I * 4;
  return { ...workingMlp(e), g, u, ld: I, step: 4, m: p["mlp.m"], ldm: C, mStep: 0 };
}

/**
 * Layer `l` of the training forward: `layerForward` with the schedule's kept tensors written where they
 * are kept (keys, values and the rest of a kept attention block in its slot, then x2 copied there).
 */
export async function trainingLayerForward(e: Engine, l: number, T: number): Promise<void> {
  const kept = keptAttention(e, l), p = e.p;
  attentionForward(
    e,
    l,
    T,
    0,
    kept?.kv ?? { k: p["act.k"], v: p["act.v"] },
    kept?.buffers ?? workingAttention(e),
  );
  if (kept) e.F.copyWithin(kept.x2 >> 2, p["act.x"] >> 2, (p["act.x"] >> 2) + T * e.D.d);
  await mlpForward(e, l, T, keptMlp(e, l) ?? workingMlp(e));
}
