/**
 * One exact gradient computation over a sequence: forward keeping each layer's input, the loss, the loss
 * backward, then each layer's backward from `L−1` to 0 with its forward recomputed (layer checkpointing).
 *
 * @module
 */
import type { Backward } from "./backward.ts";
import { DTYPE } from "../runtime/kernels.ts";
import type { Engine } from "./engine.ts";

/** Loss of a forward/backward pass. */
export interface StepLoss {
  /** Mean next-token loss over the trained positions. */
  loss: number;
  /** Trained positions. */
  tokens: number;
}

/**
 * Forward and backward of `ids[0..T)` with targets where `trained[t]` is set (all positions 1…T−1 when
 * omitted). LoRA gradients land in the backward's sink; `afterLayer(l)` runs right after layer `l`'s
 * gradients are complete (the fused optimizer update hooks in here).
 */
export async function forwardBackward(
  e: Engine,
  bw: Backward,
  ids: ArrayLike<number>,
  trained: ArrayLike<number> | undefined,
  T: number,
  afterLayer?: (l: number) => void,
): Promise<StepLoss> {
  const { L } = e.D;
  if (T > e.D.T) throw new Error(`sequence of ${T} tokens is longer than the plan's ${e.D.T}`);
  await e.embed(ids, T);
  for (let l = 0; l < L; l++) {
    storeCheckpoint(e, l, T);
    await e.loadLayer(l);
    await e.layerForward(l, T);
  }
  e.finalNorm(T);
  const tokens = e.setTargets(ids, trained, T);
  if (tokens === 0) throw new Error("the sequence has no trained tokens");
  await bw.lossForwardBackward(T);
  const { sum } = e.lossSum(T);
  for (let l = L - 1; l >= 0; l--) {
    await e.loadLayer(l);
    await bw.layerBackward(l, T, restoreCheckpoint(e, l, T));
    afterLayer?.(l);
  }
  return { loss: sum / tokens, tokens };
}

/** Keeps layer `l`'s input (the residual stream `act.x`) in its checkpoint slot, as f32 or bf16. */
export function storeCheckpoint(e: Engine, l: number, T: number): void {
  const n = T * e.D.d, x = e.p["act.x"], ckpt = e.p["ckpt"];
  if (e.options.ckptDtype === "bf16") e.k.f32_to_bf16(ckpt + l * n * 2, x, n);
  else e.F.copyWithin((ckpt >> 2) + l * n, x >> 2, (x >> 2) + n);
}

/** Pointer of layer `l`'s input as f32: the checkpoint itself, or (bf16) its decoded copy in `act.xl`. */
export function restoreCheckpoint(e: Engine, l: number, T: number): number {
  const n = T * e.D.d, ckpt = e.p["ckpt"];
  if (e.options.ckptDtype !== "bf16") return ckpt + l * n * 4;
  const xl = e.p["act.xl"];
  e.k.decode_row(DTYPE.bf16, ckpt + l * n * 2, n, 0, 0, 0, 0, n, xl);
  return xl;
}
